"""WeChat Pay API v3, Native payment (a QR code the customer scans), through `wechatpayv3`.

The SDK signs our requests with the merchant key, verifies WeChat Pay's answers and
notifications (WECHATPAY2-SHA256-RSA2048) with the WeChat Pay public key and decrypts the
notification resource (AEAD_AES_256_GCM with the APIv3 key). We add what the SDK leaves to the
merchant: the notification's serial must be our public key id (an unknown one would make the
SDK download platform certificates), its timestamp must be recent (replays), and the decrypted
order must name our mch id and app id.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from wechatpayv3 import WeChatPay, WeChatPayType

from accounts.payments.providers import (
    MAX_PROVIDER_AMOUNT,
    PaymentRejected,
    PaymentStart,
    ProviderPayment,
    ProviderUnavailable,
)
from billingsite.clock import BILLING_TZ

METHOD = "wechat_pay"
TIMEOUT = (5, 10)
# WeChat Pay signs the timestamp; an older notification is a replay (its documented window).
MAX_NOTIFICATION_AGE_SECONDS = 300
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
CLOSED_STATES = {"CLOSED", "REVOKED", "PAYERROR"}


def is_configured() -> bool:
    return all(
        (
            settings.BILLING_PUBLIC_BASE_URL,
            settings.WECHATPAY_MCH_ID,
            settings.WECHATPAY_APP_ID,
            settings.WECHATPAY_PRIVATE_KEY,
            settings.WECHATPAY_CERT_SERIAL_NO,
            settings.WECHATPAY_APIV3_KEY,
            settings.WECHATPAY_PUBLIC_KEY,
            settings.WECHATPAY_PUBLIC_KEY_ID,
        )
    )


def notify_url() -> str:
    return settings.BILLING_PUBLIC_BASE_URL + reverse("payments:wechat-notify")


def fen(amount: Decimal) -> int:
    """WeChat Pay amounts are integer fen."""
    return int((amount * 100).to_integral_exact())


def _time(value: object) -> dt.datetime | None:
    """An RFC 3339 time with its offset, as WeChat Pay writes them; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _text(value: object) -> str:
    """A string field of an answer; of another type (or missing) it is empty."""
    return value if isinstance(value, str) else ""


def _json(message) -> dict:
    try:
        value = json.loads(message) if message else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=4)
def _client(**config) -> WeChatPay:
    # Loading the keys is slow; in public-key mode the client keeps no per-request state.
    return WeChatPay(wechatpay_type=WeChatPayType.NATIVE, timeout=TIMEOUT, **config)


class WechatPayProvider:
    method = METHOD

    def __init__(self):
        self.client = _client(
            mchid=settings.WECHATPAY_MCH_ID,
            private_key=settings.WECHATPAY_PRIVATE_KEY,
            cert_serial_no=settings.WECHATPAY_CERT_SERIAL_NO,
            appid=settings.WECHATPAY_APP_ID,
            apiv3_key=settings.WECHATPAY_APIV3_KEY,
            notify_url=notify_url(),
            public_key=settings.WECHATPAY_PUBLIC_KEY,
            public_key_id=settings.WECHATPAY_PUBLIC_KEY_ID,
        )

    def merchant_id(self) -> str:
        return settings.WECHATPAY_MCH_ID

    def _call(self, call, **kwargs) -> tuple[int, dict]:
        try:
            code, message = call(**kwargs)
        except Exception as error:  # network errors, or an answer whose signature fails
            raise ProviderUnavailable(f"WeChat Pay: {error!r}") from error
        return code, _json(message)

    def start(self, *, top_up, return_url: str) -> PaymentStart:
        code, answer = self._call(
            self.client.pay,
            description=f"Balance top-up {top_up.customer.external_id}",
            out_trade_no=top_up.number,
            amount={"total": fen(top_up.amount.amount), "currency": "CNY"},
            time_expire=top_up.expires_at.astimezone(BILLING_TZ).isoformat(timespec="seconds"),
        )
        if code != 200 or not answer.get("code_url"):
            raise ProviderUnavailable(f"WeChat Pay order: {code} {answer.get('code')}")
        return PaymentStart(code_url=answer["code_url"])

    def _payment(self, resource: dict) -> ProviderPayment:
        # Signed by WeChat Pay, yet read defensively: a field of another type is a malformed
        # notification (refused as incomplete), never a server error.
        amount = resource.get("amount")
        if not isinstance(amount, dict):
            amount = {}
        total = amount.get("total")
        if (
            isinstance(total, bool)
            or not isinstance(total, int)
            or not 0 < total < MAX_PROVIDER_AMOUNT * 100
        ):
            total = None
        state = _text(resource.get("trade_state"))
        return ProviderPayment(
            method=METHOD,
            order_number=_text(resource.get("out_trade_no")),
            trade_no=_text(resource.get("transaction_id")),
            paid=state == "SUCCESS",
            closed=state in CLOSED_STATES,
            amount=Decimal(total) / 100 if total is not None else None,
            currency=_text(amount.get("currency")),
            merchant_id=_text(resource.get("mchid")),
            paid_at=_time(resource.get("success_time")),
            raw=resource,
        )

    def query(self, *, top_up) -> ProviderPayment | None:
        code, answer = self._call(self.client.query, out_trade_no=top_up.number)
        if code == 404 or answer.get("code") == "ORDER_NOT_EXIST":
            return None
        if code != 200:
            raise ProviderUnavailable(f"WeChat Pay query: {code} {answer.get('code')}")
        return self._payment(answer)

    def close(self, *, top_up) -> bool:
        code, answer = self._call(self.client.close, out_trade_no=top_up.number)
        if code in (200, 204):
            return True
        if answer.get("code") in ("ORDERPAID", "ORDER_PAID"):
            return False
        raise ProviderUnavailable(f"WeChat Pay close: {code} {answer.get('code')}")

    def parse_notification(self, request) -> ProviderPayment:
        meta = request.META
        if meta.get("HTTP_WECHATPAY_SERIAL") != settings.WECHATPAY_PUBLIC_KEY_ID:
            raise PaymentRejected("signed with an unknown key")
        if meta.get("HTTP_WECHATPAY_SIGNATURE_TYPE", SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise PaymentRejected("unsupported signature type")
        try:
            timestamp = int(meta.get("HTTP_WECHATPAY_TIMESTAMP", ""))
        except ValueError as error:
            raise PaymentRejected("no timestamp") from error
        if abs(time.time() - timestamp) > MAX_NOTIFICATION_AGE_SECONDS:
            raise PaymentRejected("stale notification (replayed?)")
        headers = {
            "HTTP_WECHATPAY_SIGNATURE": meta.get("HTTP_WECHATPAY_SIGNATURE", ""),
            "HTTP_WECHATPAY_TIMESTAMP": meta.get("HTTP_WECHATPAY_TIMESTAMP", ""),
            "HTTP_WECHATPAY_NONCE": meta.get("HTTP_WECHATPAY_NONCE", ""),
            "HTTP_WECHATPAY_SERIAL": meta.get("HTTP_WECHATPAY_SERIAL", ""),
            "HTTP_WECHATPAY_SIGNATURE_TYPE": meta.get(
                "HTTP_WECHATPAY_SIGNATURE_TYPE", SIGNATURE_TYPE
            ),
        }
        try:
            body = request.body.decode("utf-8")
            result = self.client.callback(headers=headers, body=body)
        except Exception as error:  # malformed JSON, encoding or resource: not WeChat Pay's
            raise PaymentRejected(f"unreadable notification: {error!r}") from error
        if not result or not isinstance(result.get("resource"), dict):
            raise PaymentRejected("bad signature or undecryptable resource")
        resource = result["resource"]
        if resource.get("mchid") != settings.WECHATPAY_MCH_ID:
            raise PaymentRejected("notification for another merchant")
        if resource.get("appid") != settings.WECHATPAY_APP_ID:
            raise PaymentRejected("notification for another app id")
        payment = self._payment(resource)
        if payment.amount is None or not payment.order_number or not payment.trade_no:
            raise PaymentRejected("incomplete notification")
        return payment

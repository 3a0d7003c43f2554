"""Alipay computer-website payment (`alipay.trade.page.pay`) with RSA2 signatures.

SDK: `python-alipay-sdk` (fzlee). It is the maintained, widely used one: a small pure-Python
package (pycryptodomex) that signs requests and verifies notifications and synchronous answers
with RSA2 in the documented way. The official `alipay-sdk-python` is larger, pinned to old
crypto dependencies and its own HTTP client, and offers nothing more for these four calls.

Its only outgoing call goes through `urllib`; ours goes through `requests` (same signed URL,
same verification of the answer) so deployments get a timeout and tests mock it at the HTTP
layer with `responses`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from decimal import Decimal, InvalidOperation

import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from django.conf import settings
from django.urls import reverse

from accounts.payments.providers import (
    MAX_PROVIDER_AMOUNT,
    PaymentRejected,
    PaymentStart,
    ProviderPayment,
    ProviderUnavailable,
)
from billingsite.clock import BILLING_TZ

logger = logging.getLogger(__name__)

METHOD = "alipay"
TIMEOUT_SECONDS = 10
PAID_STATES = {"TRADE_SUCCESS", "TRADE_FINISHED"}
CLOSED_STATES = {"TRADE_CLOSED"}
SUCCESS_CODE = "10000"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"


def is_configured() -> bool:
    """Keys, app id and the public URL the notifications reach."""
    return bool(
        settings.BILLING_PUBLIC_BASE_URL
        and settings.ALIPAY_APP_ID
        and settings.ALIPAY_APP_PRIVATE_KEY
        and settings.ALIPAY_PUBLIC_KEY
    )


def notify_url() -> str:
    return settings.BILLING_PUBLIC_BASE_URL + reverse("payments:alipay-notify")


class _Client(AliPay):
    """The SDK's client with our gateway and our HTTP transport."""

    def __init__(self, *, app_id, notify, private_key, public_key, gateway):
        super().__init__(
            appid=app_id,
            app_notify_url=notify,
            app_private_key_string=private_key,
            alipay_public_key_string=public_key,
            sign_type="RSA2",
        )
        self._gateway = gateway

    @property
    def gateway(self) -> str:
        return self._gateway

    def verified_sync_response(self, data, response_type):
        try:
            answer = requests.get(
                self._gateway + "?" + self.sign_data(data), timeout=TIMEOUT_SECONDS
            )
            answer.raise_for_status()
        except requests.RequestException as error:
            raise ProviderUnavailable(f"Alipay: {error}") from error
        return self._verify_and_return_sync_response(answer.text, response_type)


def _shanghai(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BILLING_TZ)
    except ValueError:
        return None


def _amount(value) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    # Above what an order can hold is no payment of ours (and no column holds it).
    return amount if amount.is_finite() and abs(amount) < MAX_PROVIDER_AMOUNT else None


@functools.lru_cache(maxsize=4)
def _client(**config) -> _Client:
    # Loading the RSA keys costs a noticeable fraction of a second; the client holds no
    # per-request state, so one per configuration serves every thread.
    return _Client(**config)


class AlipayProvider:
    method = METHOD

    def __init__(self):
        self.client = _client(
            app_id=settings.ALIPAY_APP_ID,
            notify=notify_url(),
            private_key=settings.ALIPAY_APP_PRIVATE_KEY,
            public_key=settings.ALIPAY_PUBLIC_KEY,
            gateway=settings.ALIPAY_GATEWAY,
        )

    def merchant_id(self) -> str:
        return settings.ALIPAY_APP_ID

    def start(self, *, top_up, return_url: str) -> PaymentStart:
        # The page-pay call is a signed URL the browser follows: no server-to-server call.
        query = self.client.api_alipay_trade_page_pay(
            subject=f"Balance top-up {top_up.customer.external_id}",
            out_trade_no=top_up.number,
            total_amount=str(top_up.amount.amount),
            return_url=return_url,
            notify_url=notify_url(),
            time_expire=top_up.expires_at.astimezone(BILLING_TZ).strftime("%Y-%m-%d %H:%M:%S"),
        )
        return PaymentStart(redirect_url=f"{self.client.gateway}?{query}")

    def _call(self, call, **kwargs) -> dict:
        try:
            return call(**kwargs)
        except (AliPayException, AliPayValidationError, ValueError) as error:
            raise ProviderUnavailable(f"Alipay: {error!r}") from error

    def query(self, *, top_up) -> ProviderPayment | None:
        answer = self._call(self.client.api_alipay_trade_query, out_trade_no=top_up.number)
        if answer.get("code") != SUCCESS_CODE:
            if answer.get("sub_code") == TRADE_NOT_EXIST:
                return None
            raise ProviderUnavailable(f"Alipay query: {answer.get('sub_code')}")
        status = answer.get("trade_status", "")
        return ProviderPayment(
            method=METHOD,
            order_number=answer.get("out_trade_no", ""),
            trade_no=answer.get("trade_no", ""),
            paid=status in PAID_STATES,
            closed=status in CLOSED_STATES,
            amount=_amount(answer.get("total_amount")),
            currency=answer.get("trans_currency") or "CNY",
            # A synchronous answer to our own signed request: it is about our app.
            merchant_id=settings.ALIPAY_APP_ID,
            paid_at=_shanghai(answer.get("send_pay_date")),
            raw=answer,
        )

    def close(self, *, top_up) -> bool:
        answer = self._call(self.client.api_alipay_trade_close, out_trade_no=top_up.number)
        if answer.get("code") == SUCCESS_CODE or answer.get("sub_code") == TRADE_NOT_EXIST:
            return True
        if answer.get("sub_code") == TRADE_STATUS_ERROR:
            return False
        raise ProviderUnavailable(f"Alipay close: {answer.get('sub_code')}")

    def parse_notification(self, request) -> ProviderPayment:
        """The asynchronous notification (form POST): every parameter but `sign` and
        `sign_type`, sorted, joined as k=v with &, verified with Alipay's public key (RSA2)."""
        raw = request.POST.dict()
        data = dict(raw)
        signature = data.pop("sign", "")
        if not signature:
            raise PaymentRejected("unsigned")
        try:
            verified = self.client.verify(data, signature)
        except Exception as error:  # a malformed signature or sign_type: a forgery
            raise PaymentRejected(f"bad signature: {error!r}") from error
        if not verified:
            raise PaymentRejected("bad signature")
        if raw.get("app_id") != settings.ALIPAY_APP_ID:
            raise PaymentRejected("notification for another app id")
        amount = _amount(raw.get("total_amount"))
        if amount is None or not raw.get("out_trade_no") or not raw.get("trade_no"):
            raise PaymentRejected("incomplete notification")
        status = raw.get("trade_status", "")
        return ProviderPayment(
            method=METHOD,
            order_number=raw["out_trade_no"],
            trade_no=raw["trade_no"],
            paid=status in PAID_STATES,
            closed=status in CLOSED_STATES,
            amount=amount,
            currency=raw.get("trans_currency") or "CNY",
            merchant_id=raw["app_id"],
            paid_at=_shanghai(raw.get("gmt_payment")),
            raw=raw,
        )

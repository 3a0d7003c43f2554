"""Offline stand-ins for Alipay and WeChat Pay: key pairs generated here (never in the repo),
notifications and synchronous answers signed the way each provider documents them, and the
settings that configure both providers with these keys.

Alipay (open platform, RSA2): a notification is a form POST; its signature is SHA256withRSA
by Alipay's key over every other parameter but `sign`/`sign_type`, sorted, joined `k=v&...`.
A synchronous answer is `{"<method>_response": {...}, "sign": "..."}`, signed over the exact
JSON text of the response object.

WeChat Pay API v3: a notification is JSON whose `resource` is AEAD_AES_256_GCM-encrypted with
the APIv3 key; headers carry `Wechatpay-Timestamp`, `-Nonce`, `-Serial` (the public key id)
and `-Signature`: SHA256withRSA by WeChat Pay's key over "timestamp\\nnonce\\nbody\\n". Its
API answers are signed the same way.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALIPAY_APP_ID = "2021000000000001"
ALIPAY_GATEWAY = "https://alipay.test/gateway.do"
WECHAT_MCH_ID = "1900000109"
WECHAT_APP_ID = "wxd678efh567hg6787"
WECHAT_PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
WECHAT_APIV3_KEY = "a12d3924fd499edac8a5efc0f0e1d2c3"  # 32 bytes
WECHAT_GATEWAY = "https://api.mch.weixin.qq.com"
PUBLIC_BASE_URL = "https://billing.example.com"


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, message: str) -> str:
        signature = self.private.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


@functools.cache
def key(name: str) -> KeyPair:
    """One 2048-bit pair per role, generated once per test process."""
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def configure(settings, *, alipay: bool = True, wechat: bool = True) -> None:
    settings.BILLING_PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.ALIPAY_APP_ID = ALIPAY_APP_ID if alipay else ""
    settings.ALIPAY_APP_PRIVATE_KEY = key("alipay-app").private_pem
    settings.ALIPAY_PUBLIC_KEY = key("alipay-platform").public_pem
    settings.ALIPAY_GATEWAY = ALIPAY_GATEWAY
    settings.WECHATPAY_MCH_ID = WECHAT_MCH_ID if wechat else ""
    settings.WECHATPAY_APP_ID = WECHAT_APP_ID
    settings.WECHATPAY_PRIVATE_KEY = key("wechat-merchant").private_pem
    settings.WECHATPAY_CERT_SERIAL_NO = "444F4864EA9B34415000000000000000"
    settings.WECHATPAY_APIV3_KEY = WECHAT_APIV3_KEY
    settings.WECHATPAY_PUBLIC_KEY = key("wechat-platform").public_pem
    settings.WECHATPAY_PUBLIC_KEY_ID = WECHAT_PUBLIC_KEY_ID


# --- Alipay ---------------------------------------------------------------------------------


def alipay_sign(params: dict, *, signer: KeyPair | None = None) -> dict:
    """The notification as Alipay posts it: the parameters plus sign_type and sign."""
    unsigned = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    signed = dict(params)
    signed["sign_type"] = "RSA2"
    signed["sign"] = (signer or key("alipay-platform")).sign(unsigned)
    return signed


def alipay_notification(
    *,
    order_number: str,
    amount: str,
    trade_no: str = "2026120122001400001000000001",
    status: str = "TRADE_SUCCESS",
    app_id: str = ALIPAY_APP_ID,
    signer: KeyPair | None = None,
) -> dict:
    return alipay_sign(
        {
            "notify_time": "2026-12-01 10:05:00",
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "charset": "utf-8",
            "version": "1.0",
            "app_id": app_id,
            "auth_app_id": app_id,
            "trade_no": trade_no,
            "out_trade_no": order_number,
            "trade_status": status,
            "total_amount": amount,
            "receipt_amount": amount,
            "buyer_pay_amount": amount,
            "seller_id": "2088101106499364",
            "gmt_create": "2026-12-01 10:04:30",
            "gmt_payment": "2026-12-01 10:04:55",
            "subject": "Balance top-up",
        },
        signer=signer,
    )


def alipay_answer(method: str, payload: dict) -> str:
    """A synchronous gateway answer (e.g. alipay.trade.query), signed by Alipay."""
    inner = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    signature = key("alipay-platform").sign(inner)
    response_type = method.replace(".", "_") + "_response"
    return f'{{"{response_type}":{inner},"sign":"{signature}"}}'


def alipay_mock_query(responses_mock, payload: dict) -> None:
    responses_mock.get(
        ALIPAY_GATEWAY,
        body=alipay_answer("alipay.trade.query", payload),
        content_type="application/json;charset=utf-8",
    )


def alipay_query_paid(*, order_number: str, amount: str, trade_no: str) -> dict:
    return {
        "code": "10000",
        "msg": "Success",
        "trade_no": trade_no,
        "out_trade_no": order_number,
        "buyer_logon_id": "159****5620",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "buyer_pay_amount": amount,
        "receipt_amount": amount,
        "send_pay_date": "2026-12-01 10:04:55",
    }


def alipay_not_exist() -> dict:
    return {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": "ACQ.TRADE_NOT_EXIST",
        "sub_msg": "交易不存在",
    }


# --- WeChat Pay -----------------------------------------------------------------------------


def wechat_signed_headers(body: str, *, timestamp: int | None = None, signer=None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16)
    signature = (signer or key("wechat-platform")).sign(f"{timestamp}\n{nonce}\n{body}\n")
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": WECHAT_PUBLIC_KEY_ID,
        "Wechatpay-Signature": signature,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def wechat_transaction(
    *,
    order_number: str,
    total_fen: int,
    transaction_id: str = "4200000001202612010000000001",
    state: str = "SUCCESS",
    mchid: str = WECHAT_MCH_ID,
    appid: str = WECHAT_APP_ID,
) -> dict:
    return {
        "appid": appid,
        "mchid": mchid,
        "out_trade_no": order_number,
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": state,
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-12-01T10:04:55+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": total_fen,
            "payer_total": total_fen,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


def wechat_notification(resource: dict, *, timestamp: int | None = None, signer=None):
    """(body, django client headers) of a TRANSACTION.SUCCESS notification."""
    nonce = secrets.token_hex(6)  # 12 characters, as WeChat Pay's nonces
    ciphertext = AESGCM(WECHAT_APIV3_KEY.encode()).encrypt(
        nonce.encode(), json.dumps(resource).encode(), b"transaction"
    )
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2026-12-01T10:05:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
    )
    headers = wechat_signed_headers(body, timestamp=timestamp, signer=signer)
    return body, {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}


def wechat_mock(responses_mock, method: str, path: str, *, status: int, payload=None) -> None:
    body = json.dumps(payload) if payload is not None else ""
    responses_mock.add(
        method,
        WECHAT_GATEWAY + path,
        body=body,
        status=status,
        headers=wechat_signed_headers(body),
        content_type="application/json",
    )

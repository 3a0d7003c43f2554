"""The providers' webhooks under hostile input (hypothesis): payment notifications and mail
notices that are correctly signed (so they reach the code behind the signature check) but
whose content is anything JSON or a form can carry. Never a server error; nothing credited but
a payment that matches its order; nothing recorded from a notice that is not one.

The default run is small and derandomized (CI); `pytest --run-slow` explores longer."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from accounts.models import BillingContact, EmailDelivery, LedgerEntry, MailBounce, TopUp
from accounts.payments.services import top_up_create
from tests.accounts import payment_fakes as fakes
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ALIPAY_NOTIFY = "/payments/alipay/notify/"
WECHAT_NOTIFY = "/payments/wechat/notify/"
MAIL_EVENTS = "/mail/events/"
MAIL_SECRET = "whsec_dGhlIG1haWwgcHJvdmlkZXIncyBmdXp6IHNlY3JldA=="
ORDER_AMOUNT = Decimal("500.00")

# Strings that have broken parsers and columns: NUL, huge and odd numbers, long text; in
# JSON also a lone surrogate (a form cannot carry one). Besides, whatever text() draws.
ODD_STRINGS = st.sampled_from(
    ["", "\x00", "NaN", "Infinity", "-1", "1e30", "1e-30", "0", "500.00", "5e2", "x" * 5000]
)
TEXT = st.one_of(ODD_STRINGS, st.text(max_size=40))
JSON_TEXT = TEXT | st.just("\ud800")
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def fuzz_settings(examples: int):
    return hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(params=[pytest.param(12, id="ci"), pytest.param(300, marks=pytest.mark.slow)])
def examples(request) -> int:
    return request.param


@pytest.fixture
def configured(settings):
    fakes.configure(settings)
    settings.MAIL_WEBHOOK_SECRET = MAIL_SECRET


def deposits_total() -> Decimal:
    return sum(
        (e.amount.amount for e in LedgerEntry.objects.filter(kind="deposit")), Decimal("0.00")
    )


def assert_at_most_the_order_credited(order: TopUp) -> None:
    """A deposit only for the order's own amount, and only once."""
    entries = list(LedgerEntry.objects.filter(kind="deposit"))
    assert len(entries) <= 1, entries
    if entries:
        assert entries[0].amount.amount == ORDER_AMOUNT
        assert entries[0].customer_id == order.customer_id


# --- Alipay: a form POST -------------------------------------------------------------------

ALIPAY_FIELDS = [
    "app_id",
    "trade_no",
    "out_trade_no",
    "trade_status",
    "total_amount",
    "trans_currency",
    "gmt_payment",
    "notify_time",
    "charset",
    "sign_type",
]


def test_signed_alipay_notifications_with_any_fields_never_fail_the_server(configured, examples):
    customer = CustomerFactory()
    order = top_up_create(
        customer=customer,
        amount=str(ORDER_AMOUNT),
        method="alipay",
        now=timezone.now(),
        return_url=lambda number: f"https://billing.example.com/balance/top-up/{number}/",
    )
    changes = st.dictionaries(st.sampled_from(ALIPAY_FIELDS), TEXT, max_size=4)

    @fuzz_settings(examples)
    @given(changes=changes, out_trade_no=st.sampled_from([order.number, "TU0", ""]))
    def run(changes, out_trade_no):
        params = fakes.alipay_notification(order_number=out_trade_no, amount=str(ORDER_AMOUNT))
        params = {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
        params.update(changes)
        params = {k: v for k, v in params.items() if k not in ("sign",)}
        signed = fakes.alipay_sign({k: v for k, v in params.items() if k != "sign_type"})
        if "sign_type" in changes:
            signed["sign_type"] = changes["sign_type"]
        response = Client().post(ALIPAY_NOTIFY, signed)
        assert response.status_code == 200, (signed, response.content)
        assert response.content in (b"success", b"fail")
        assert_at_most_the_order_credited(order)

    run()


# --- WeChat Pay: encrypted JSON ------------------------------------------------------------

WECHAT_FIELDS = [
    "appid",
    "mchid",
    "out_trade_no",
    "transaction_id",
    "trade_state",
    "success_time",
    "amount",
    "payer",
]


def test_signed_wechat_notifications_with_any_resource_never_fail_the_server(configured, examples):
    customer = CustomerFactory()
    with responses.RequestsMock() as mock:
        fakes.wechat_mock(
            mock,
            "POST",
            "/v3/pay/transactions/native",
            status=200,
            payload={"code_url": "weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00"},
        )
        order = top_up_create(
            customer=customer,
            amount=str(ORDER_AMOUNT),
            method="wechat_pay",
            now=timezone.now(),
            return_url=lambda number: f"https://billing.example.com/balance/top-up/{number}/",
        )
    amounts = st.one_of(
        JSON,
        st.fixed_dictionaries({"total": JSON, "currency": JSON}),
        st.fixed_dictionaries({"total": st.integers(), "currency": st.just("CNY")}),
    )
    changes = st.dictionaries(
        st.sampled_from(WECHAT_FIELDS), JSON, max_size=3
    ) | st.fixed_dictionaries({"amount": amounts})

    @fuzz_settings(examples)
    @given(changes=changes, whole=st.none() | JSON)
    def run(changes, whole):
        resource = fakes.wechat_transaction(order_number=order.number, total_fen=50000)
        resource.update(changes)
        body, headers = fakes.wechat_notification(resource if whole is None else whole)
        response = Client().post(WECHAT_NOTIFY, body, content_type="application/json", **headers)
        assert response.status_code in (204, 400), (resource, response.content)
        if response.status_code == 400:
            assert response.json()["code"] == "FAIL"
        assert_at_most_the_order_credited(order)

    run()


# --- the mail provider's notices -----------------------------------------------------------


def mail_post(payload, notice_id: str):
    body = json.dumps(payload)
    now = timezone.now()
    return Client().post(
        MAIL_EVENTS,
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID=notice_id,
        HTTP_WEBHOOK_TIMESTAMP=str(int(now.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=Webhook(MAIL_SECRET).sign(notice_id, now, body),
    )


def test_signed_mail_notices_with_any_payload_never_fail_the_server(configured, examples):
    data = st.fixed_dictionaries(
        {},
        optional={
            "to": JSON | st.lists(TEXT.map(lambda t: f"{t}@example.com"), max_size=3),
            "bounce": JSON,
        },
    )
    payloads = JSON | st.fixed_dictionaries(
        {"type": st.sampled_from(["email.bounced", "email.complained", "email.sent"]) | TEXT},
        optional={"data": data | JSON},
    )

    @fuzz_settings(examples)
    @given(payload=payloads, notice_id=st.sampled_from(["msg_1", "msg_" + "9" * 300]) | TEXT)
    def run(payload, notice_id):
        deliveries = list(EmailDelivery.objects.values_list("status", flat=True))
        response = mail_post(payload, notice_id)
        assert response.status_code in (204, 400), (payload, response.content)
        if response.status_code == 400:
            assert response.json()["code"] == "notice_refused"
            assert list(EmailDelivery.objects.values_list("status", flat=True)) == deliveries
        assert not BillingContact.objects.filter(bounced_at__isnull=False).exists() or (
            MailBounce.objects.exists()
        )

    run()

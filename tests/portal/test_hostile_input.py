"""Hostile input on the portal: URLs tampered with (another customer's documents, top-ups and
fapiao files; ids that cannot exist) and every form posted with missing, huge, negative, NaN,
Infinity, exponent, other scripts' digits, NUL and unicode values. Each answer is a 404, a 4xx
or the form again with its error; never a 500, never the other customer's data, and the
database is exactly as before."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from accounts.models import BillingContact, Customer, LedgerEntry, TopUp
from accounts.payments.services import top_up_create
from billingsite.text import invisible_character_message
from invoices.documents.fapiao import FIELD_LABELS, BuyerDetails, fapiao_request_create
from invoices.models import FapiaoRequest, Invoice
from tests.accounts import payment_fakes as fakes
from tests.portal.conftest import OCTOBER
from tests.portal.factories import credit_note, issued_invoice

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
USCC = "91310000MA1FL0000N"

# What a hostile or careless hand types into an amount.
HOSTILE_AMOUNTS = [
    "",
    " ",
    "-1",
    "-0.01",
    "0",
    "0.001",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e3",
    "1E+30",
    "1e-2",
    "1e999999999",
    "9" * 400,
    "１００",  # full-width digits: Decimal reads them as 100
    "٣٠٠",  # Arabic-Indic digits
    "100\x00",
    "\x00",
    "0x10",
    "1_000",
    "12,34",
    "¥-5",
    "💰",
]
# What a hostile hand types into a text field: refused (NUL, far too long) ...
HOSTILE_TEXT = ["\x00", "a\x00b", "x" * 100_000]
# ... or, when the field takes free text, stored as typed (never interpreted).
ODD_TEXT = ["' OR 1=1 --", "<script>alert(1)</script>", "名称 🏢", "上海\u3000万坦"]
# Invisible characters that change how a document reads (billingsite.text): refused with the
# field named. Tab and line feed are refused too where a field has one line.
INVISIBLE_TEXT = [
    "\u202egnp.exe",  # right-to-left override: reads "exe.png"
    "Acme\u200bChat",  # zero-width space
    "\ufeffAcme",  # byte-order mark
    "Acme \u2066Chat\u2069",  # directional isolate
    "Acme\u200f",  # right-to-left mark
    "Acme\x1b[31m",  # escape (C0 control)
    "Acme\x7f",  # delete
    "Ac\u0085me",  # next line (C1 control; at either end the form would strip it as a space)
    "Acme\u2028Chat",  # line separator
    "Acme\tChat",
    "Acme\nChat",
]


@pytest.fixture(autouse=True)
def _now(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    fakes.configure(settings)
    with freeze_time(NOW):
        yield


def snapshot() -> dict:
    """Every row the portal's forms could write, as values."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Customer, BillingContact, LedgerEntry, TopUp, FapiaoRequest, Invoice)
    }


@pytest.fixture
def documents(acme_invoice, rival):
    line = acme_invoice.lines.order_by("position").first()
    note = credit_note(invoice=acme_invoice, amounts={line.pk: Decimal("300.00")})
    fapiao = fapiao_request_create(
        invoice=acme_invoice,
        customer=acme_invoice.customer,
        details=BuyerDetails(kind="ordinary", buyer_title="Acme Chat Ltd", buyer_tax_id=USCC),
        now=NOW,
    )
    top_up = top_up_create(
        customer=acme_invoice.customer,
        amount="500.00",
        method="alipay",
        now=NOW,
        return_url=lambda number: f"https://billing.example.com/balance/top-up/{number}/",
    )
    contact = BillingContact.objects.create(
        customer=acme_invoice.customer, email="ap@acme.example", name="Accounts payable"
    )
    return {
        "invoice": acme_invoice,
        "note": note,
        "fapiao": fapiao,
        "top_up": top_up,
        "contact": contact,
        "rival_invoice": issued_invoice(customer=rival, period=OCTOBER),
    }


# --- URLs tampered with ----------------------------------------------------------------------


def acme_urls(d) -> list[tuple[str, str]]:
    invoice, note, fapiao, top_up = d["invoice"], d["note"], d["fapiao"], d["top_up"]
    return [
        ("GET", reverse("portal:invoice-detail", args=[invoice.number])),
        ("GET", reverse("portal:invoice-pdf", args=[invoice.number])),
        ("GET", reverse("portal:credit-note-detail", args=[note.number])),
        ("GET", reverse("portal:credit-note-pdf", args=[note.number])),
        ("GET", reverse("portal:fapiao-request", args=[invoice.number])),
        ("POST", reverse("portal:fapiao-request", args=[invoice.number])),
        ("GET", reverse("portal:fapiao-file", args=[invoice.number, fapiao.pk])),
        # The rival's own invoice number with Acme's fapiao request id.
        ("GET", reverse("portal:fapiao-file", args=[d["rival_invoice"].number, fapiao.pk])),
        ("GET", reverse("portal:top-up-detail", args=[top_up.number])),
        ("GET", reverse("portal:top-up-status", args=[top_up.number])),
    ]


def test_another_customers_ids_in_every_url_are_404_and_show_nothing(
    client_for, rival_user, documents
):
    client = client_for(rival_user)
    before = snapshot()
    for method, url in acme_urls(documents):
        data = {"kind": "ordinary", "buyer_title": "Rival", "buyer_tax_id": USCC}
        response = client.post(url, data) if method == "POST" else client.get(url)
        assert response.status_code == 404, (method, url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        for secret in (
            documents["invoice"].number,
            documents["note"].number,
            documents["top_up"].number,
            "Acme",
            "500.00",
        ):
            assert secret.encode() not in body, (url, secret)
    assert snapshot() == before


@pytest.mark.parametrize(
    "path",
    [
        "/invoices/INV-2026-999999/",
        "/invoices/%00/",
        "/invoices/..%2F..%2Fetc%2Fpasswd/pdf/",
        "/invoices/" + "9" * 5000 + "/",
        "/invoices/%F0%9F%92%B0/",
        "/invoices/{invoice}/fapiao/99999999999999999999999/file/",
        "/invoices/{invoice}/fapiao/0/file/",
        "/invoices/{invoice}/fapiao/-1/file/",
        "/credit-notes/CN-2026-999999/pdf/",
        "/credit-notes/' OR 1=1 --/",
        "/balance/top-up/TU00000000000000000000000000/",
        "/balance/top-up/%00/status/",
        "/balance/top-up/" + "x" * 5000 + "/",
    ],
)
def test_ids_that_cannot_exist_are_404(client_for, acme_user, documents, path):
    path = path.format(invoice=documents["invoice"].number)
    before = snapshot()
    response = client_for(acme_user).get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert snapshot() == before


# --- forms posted with hostile values --------------------------------------------------------


def test_a_hostile_top_up_amount_is_a_400_and_orders_nothing(client_for, acme_user):
    # One customer for every value (a loop, not parameters: the fixture is the cost).
    client = client_for(acme_user)
    before = snapshot()
    for amount in HOSTILE_AMOUNTS:
        response = client.post(reverse("portal:top-up"), {"amount": amount, "method": "alipay"})
        assert response.status_code == 400, (amount, response.status_code)
        assert "Enter an amount from ¥10.00 to ¥100,000.00" in response.content.decode()
        assert snapshot() == before, amount


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"amount": "500.00"},
        {"amount": "500.00", "method": "bank_transfer"},
        {"amount": "500.00", "method": "paypal"},
        {"amount": "500.00", "method": "alipay\x00"},
        {"amount": "500.00", "method": "x" * 10_000},
    ],
)
def test_a_top_up_without_a_known_method_is_a_400(client_for, acme_user, data):
    client = client_for(acme_user)
    before = snapshot()
    response = client.post(reverse("portal:top-up"), data)
    assert response.status_code == 400
    assert snapshot() == before


def test_a_hostile_low_balance_amount_is_a_400_and_changes_nothing(client_for, acme_user):
    client = client_for(acme_user)
    before = snapshot()
    for amount in [a for a in HOSTILE_AMOUNTS if a.strip()] + ["0.00"]:
        response = client.post(
            reverse("portal:low-balance"),
            {"low_balance_alert": "amount", "low_balance_amount": amount},
        )
        assert response.status_code == 400, (amount, response.status_code)
        assert snapshot() == before, amount


@pytest.mark.parametrize("alert", ["", "AMOUNT", "never\x00", "x" * 10_000, "runway; DROP"])
def test_an_unknown_low_balance_choice_is_a_400(client_for, acme_user, alert):
    client = client_for(acme_user)
    before = snapshot()
    response = client.post(
        reverse("portal:low-balance"), {"low_balance_alert": alert, "low_balance_amount": "5"}
    )
    assert response.status_code == 400
    assert snapshot() == before


FAPIAO_FIELDS = [
    "kind",
    "buyer_title",
    "buyer_tax_id",
    "buyer_address",
    "buyer_phone",
    "buyer_bank",
    "buyer_account",
]


def diagonal(fields: list, values: list) -> list[tuple]:
    """Each field at least once and each value at least once: max(fields, values) pairs of
    the fields x values table, for CI; the whole table runs with `pytest --run-slow`."""
    return [
        (fields[n % len(fields)], values[n % len(values)])
        for n in range(max(len(fields), len(values)))
    ]


def field_value_pairs(fields: list[str], values: list) -> list:
    """Every (field, value) pair; the default run takes the diagonal, the rest is marked
    slow (`pytest --run-slow`): the whole table costs ~50 issued invoices' set-up on CI's two
    cores."""
    fast = {(fields.index(f), values.index(v)) for f, v in diagonal(fields, values)}
    return [
        pytest.param(
            field,
            value,
            marks=() if (index_f, index_v) in fast else pytest.mark.slow,
        )
        for index_f, field in enumerate(fields)
        for index_v, value in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("field", "value"), field_value_pairs(FAPIAO_FIELDS, [None, *HOSTILE_TEXT])
)
def test_a_hostile_fapiao_request_is_a_form_error_and_requests_nothing(
    client_for, acme_user, acme_invoice, field, value
):
    data = {
        "kind": "special",
        "buyer_title": "Acme Chat Ltd",
        "buyer_tax_id": USCC,
        "buyer_address": "1 Century Avenue",
        "buyer_phone": "021-12345678",
        "buyer_bank": "ICBC Pudong",
        "buyer_account": "1001 2345 6789",
    }
    if value is None:
        del data[field]
    else:
        data[field] = value
    client = client_for(acme_user)
    before = snapshot()
    response = client.post(reverse("portal:fapiao-request", args=[acme_invoice.number]), data)
    assert response.status_code == 400, response.status_code
    assert response.context["form"].errors
    assert snapshot() == before


@pytest.mark.parametrize(("field", "value"), field_value_pairs(FAPIAO_FIELDS[1:], ODD_TEXT))
def test_odd_fapiao_text_is_refused_or_kept_as_typed(
    client_for, acme_user, acme_invoice, field, value
):
    data = {
        "kind": "special",
        "buyer_title": "Acme Chat Ltd",
        "buyer_tax_id": USCC,
        "buyer_address": "1 Century Avenue",
        "buyer_phone": "021-12345678",
        "buyer_bank": "ICBC Pudong",
        "buyer_account": "1001 2345 6789",
        field: value,
    }
    response = client_for(acme_user).post(
        reverse("portal:fapiao-request", args=[acme_invoice.number]), data
    )
    if response.status_code == 400:
        assert response.context["form"].errors
        assert not FapiaoRequest.objects.exists()
        return
    assert response.status_code == 302
    [request] = FapiaoRequest.objects.all()
    assert getattr(request, field) == value
    page = client_for(acme_user).get(reverse("portal:fapiao-request", args=[acme_invoice.number]))
    assert b"<script>alert(1)" not in page.content


def fapiao_invisible_problems(client, invoice, pairs) -> list[str]:
    """Posts each (field, value) to the fapiao request page: each must be a 400 naming the
    field, with nothing written. One invoice for all (a refusal changes nothing)."""
    problems = []
    before = snapshot()
    for field, value in pairs:
        data = {
            "kind": "special",
            "buyer_title": "Acme Chat Ltd",
            "buyer_tax_id": USCC,
            "buyer_address": "1 Century Avenue",
            "buyer_phone": "021-12345678",
            "buyer_bank": "ICBC Pudong",
            "buyer_account": "1001 2345 6789",
            field: value,
        }
        response = client.post(reverse("portal:fapiao-request", args=[invoice.number]), data)
        message = invisible_character_message(value, label=FIELD_LABELS[field])
        errors = response.context["form"].errors if response.status_code == 400 else {}
        if {name: list(messages) for name, messages in errors.items()} != {field: [message]}:
            problems.append(f"{field} {value!r}: {response.status_code} {dict(errors)}")
        elif message not in response.content.decode():
            problems.append(f"{field} {value!r}: the page does not say why")
        if snapshot() != before:
            problems.append(f"{field} {value!r}: the database changed")
    return problems


def test_invisible_characters_in_a_fapiao_request_are_refused_naming_the_field(
    client_for, acme_user, acme_invoice
):
    """The fields x values table's diagonal; the whole table is the slow test below."""
    pairs = diagonal(FAPIAO_FIELDS[1:], INVISIBLE_TEXT)
    assert fapiao_invisible_problems(client_for(acme_user), acme_invoice, pairs) == []


@pytest.mark.slow
def test_invisible_characters_in_a_fapiao_request_every_field_and_value(
    client_for, acme_user, acme_invoice
):
    pairs = [(field, value) for field in FAPIAO_FIELDS[1:] for value in INVISIBLE_TEXT]
    assert fapiao_invisible_problems(client_for(acme_user), acme_invoice, pairs) == []


def test_a_right_to_left_override_in_the_buyer_title_reads_clearly(
    client_for, acme_user, acme_invoice
):
    data = {"kind": "ordinary", "buyer_title": "Acme\u202eLtd", "buyer_tax_id": USCC}
    response = client_for(acme_user).post(
        reverse("portal:fapiao-request", args=[acme_invoice.number]), data
    )
    assert response.context["form"].errors == {
        "buyer_title": [
            "The buyer title contains an invisible control character (U+202E RIGHT-TO-LEFT "
            "OVERRIDE); delete it and type the text again."
        ]
    }
    assert not FapiaoRequest.objects.exists()


CONTACT_FORM = {
    "settings-preferred_language": "en",
    "contacts-TOTAL_FORMS": "1",
    "contacts-INITIAL_FORMS": "0",
    "contacts-MIN_NUM_FORMS": "0",
    "contacts-MAX_NUM_FORMS": "20",
    "contacts-0-email": "ops@acme.example",
    "contacts-0-name": "Ops",
    "contacts-0-receives_invoices": "on",
}


@pytest.mark.parametrize(
    "change",
    [
        {"settings-preferred_language": "klingon"},
        {"settings-preferred_language": "en\x00"},
        {"contacts-0-email": "not an address"},
        {"contacts-0-email": "a\x00@acme.example"},
        {"contacts-0-email": "x" * 300 + "@acme.example"},
        {"contacts-0-name": "\x00"},
        {"contacts-0-name": "x" * 100_000},
        {"contacts-TOTAL_FORMS": "100000"},
        {"contacts-TOTAL_FORMS": "-1"},
        {"contacts-TOTAL_FORMS": "NaN"},
        {"contacts-TOTAL_FORMS": "\x00"},
        {"contacts-TOTAL_FORMS": None},
        {"contacts-INITIAL_FORMS": "1", "contacts-0-id": "99999999999999999999"},
        {"contacts-INITIAL_FORMS": "1", "contacts-0-id": "-1"},
        {"contacts-INITIAL_FORMS": "1", "contacts-0-id": "abc"},
    ],
)
def test_a_hostile_contacts_form_is_a_form_error_and_changes_nothing(client_for, acme_user, change):
    data = {**CONTACT_FORM, **change}
    data = {key: value for key, value in data.items() if value is not None}
    client = client_for(acme_user)
    before = snapshot()
    response = client.post(reverse("portal:contacts"), data)
    if change == {"contacts-TOTAL_FORMS": "-1"}:
        # Django reads a negative count as no rows: the page saves only the unchanged settings.
        assert response.status_code == 302
    else:
        assert response.status_code in (200, 400), response.status_code
        form_errors = response.context["settings_form"].errors
        assert form_errors or not response.context["formset"].is_valid()
    assert snapshot() == before


def test_invisible_characters_in_a_contact_name_are_refused(client_for, acme_user):
    client = client_for(acme_user)
    before = snapshot()
    for value in INVISIBLE_TEXT:
        response = client.post(
            reverse("portal:contacts"), {**CONTACT_FORM, "contacts-0-name": value}
        )
        assert response.status_code in (200, 400), value
        [form] = response.context["formset"].forms
        assert form.errors == {"name": [invisible_character_message(value, label="contact name")]}
        assert snapshot() == before, value
    response = client.post(reverse("portal:contacts"), {**CONTACT_FORM, "contacts-0-name": "张 三"})
    assert response.status_code == 302
    assert BillingContact.objects.filter(name="张 三").exists()


def test_another_customers_contact_id_cannot_be_edited_or_deleted(
    client_for, acme_user, rival_user, documents
):
    """The formset's ids are the customer's own contacts: the rival posting Acme's contact id
    (to rename or delete it) gets a form error and Acme's contact stays."""
    contact = documents["contact"]
    client = client_for(rival_user)
    before = snapshot()
    for extra in ({"contacts-0-DELETE": "on"}, {"contacts-0-email": "evil@rival.example"}):
        data = {
            **CONTACT_FORM,
            "contacts-INITIAL_FORMS": "1",
            "contacts-0-id": str(contact.pk),
            **extra,
        }
        response = client.post(reverse("portal:contacts"), data)
        assert response.status_code in (200, 400)
        assert response.context["formset"].non_form_errors() == [
            "This list of contacts changed or was tampered with; reload the page."
        ]
        assert b"ap@acme.example" not in response.content
    assert snapshot() == before


@pytest.mark.parametrize(
    "data",
    [
        {"language": "\x00"},
        {"language": "x" * 10_000},
        {"language": "zh-hans", "next": "https://evil.example/"},
        {"language": "zh-hans", "next": "//evil.example/"},
    ],
)
def test_the_language_switch_refuses_hostile_values(client_for, acme_user, data):
    client = client_for(acme_user)
    response = client.post("/i18n/setlang/", data)
    assert response.status_code in (204, 302, 400)
    if response.status_code == 302:
        assert "evil.example" not in response["Location"]


@pytest.mark.parametrize(
    "data",
    [
        {"username": "\x00", "password": "x"},
        {"username": "alice", "password": "\x00"},
        {"username": "x" * 100_000, "password": "x"},
        {},
    ],
)
def test_the_login_form_refuses_hostile_values(client, acme_user, data):
    response = client.post(reverse("portal:login"), data)
    assert response.status_code in (200, 400, 403)
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("email", ["\x00", "a\x00@b.example", "x" * 100_000, ""])
def test_the_password_reset_form_refuses_hostile_values(client, acme_user, email, mailoutbox):
    response = client.post(reverse("portal:password-reset"), {"email": email})
    assert response.status_code in (200, 400)
    assert response.context["form"].errors
    assert mailoutbox == []

"""Hostile input on the admin's money forms and uploads: every amount field posted with
missing, huge, negative, NaN, Infinity, exponent, other scripts' digits, NUL and unicode
values; bank statements and usage CSVs malformed, huge or in the wrong encoding. Each is a form
error (or a 4xx), never a 500, and the database is exactly as before."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import (
    AdjustmentRequest,
    Application,
    BankStatement,
    BankStatementLine,
    BillingContact,
    Customer,
    DailyUsage,
    LedgerEntry,
)
from billingsite.text import invisible_character, invisible_character_message
from invoices.documents.fapiao import BuyerDetails, fapiao_request_create
from plans.models import DedicatedContract, Discount, Plan, PlanPrice, VatRate
from tests.admin.conftest import as_user
from tests.portal.test_hostile_input import HOSTILE_AMOUNTS, INVISIBLE_TEXT, USCC, diagonal

pytestmark = pytest.mark.django_db

# Amounts that are fine for a negative-allowed field or below a form's minimum are excluded per
# form below; the rest must be refused everywhere.
ALWAYS_REFUSED = [a for a in HOSTILE_AMOUNTS if a not in ("-1", "-0.01", "0", "12,34", "")]


def snapshot() -> dict:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (
            LedgerEntry,
            AdjustmentRequest,
            DedicatedContract,
            Discount,
            VatRate,
            PlanPrice,
            DailyUsage,
            BankStatement,
            BankStatementLine,
        )
    }


def refusal_problem(response, before) -> str | None:
    """Why the answer is not a refusal that changed nothing (None: it is)."""
    if response.status_code not in (200, 400, 403, 404, 413):
        return f"status {response.status_code}"
    if response.status_code == 200:
        context = response.context
        if "resend" in context:
            return "accepted (the confirmation page)"
        form = context.get("form") or context["adminform"].form
        if not form.errors:
            return "accepted"
    if snapshot() != before:
        return "the database changed"
    return None


def each_refused(values, post) -> None:
    """Posts every value (one fixture for all: the month's billing is costly to build) and
    lists every value that was not refused, or changed something."""
    before = snapshot()
    problems = []
    for value in values:
        problem = refusal_problem(post(value), before)
        if problem:
            problems.append(f"{str(value)[-80:]!r}: {problem}")
            before = snapshot()
    assert not problems, problems


def test_deposit_amount(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_deposit", args=[month.alpha.pk])
    each_refused(
        [*ALWAYS_REFUSED, "-1", "0"],
        lambda amount: client.post(
            url, {"amount": amount, "bank_reference": "REF-1", "token": uuid.uuid4().hex}
        ),
    )


def test_adjustment_amount_and_reason(client, manager, month):
    as_user(client, manager)
    url = reverse("admin:accounts_customer_adjust", args=[month.alpha.pk])
    # "¥-5" is a well-formed negative amount: an adjustment may take money away.
    each_refused(
        [*[a for a in ALWAYS_REFUSED if a != "¥-5"], "0"],
        lambda amount: client.post(
            url, {"amount": amount, "reason": "Goodwill", "token": uuid.uuid4().hex}
        ),
    )
    each_refused(
        ["\x00", "x" * 100_000, "   "],
        lambda reason: client.post(
            url, {"amount": "10.00", "reason": reason, "token": uuid.uuid4().hex}
        ),
    )


def test_contract_fee_and_days(client, manager, month):
    as_user(client, manager)
    url = reverse("admin:accounts_application_contract", args=[month.beta_app.pk])

    def post(**fields):
        data = {"monthly_fee": "20000.00", "first_day": "2026-10-01", "last_day": ""}
        return client.post(url, {**data, **fields, "token": uuid.uuid4().hex})

    each_refused([*ALWAYS_REFUSED, "-1", "0"], lambda fee: post(monthly_fee=fee))
    each_refused(
        ["\x00", "2026-02-30", "99999-01-01", "0001-01-01", "2026-10-01T00:00", "1e3"],
        lambda day: post(first_day=day),
    )


def test_credit_note_line_amount(client, manager, month):
    as_user(client, manager)
    line = month.issued.lines.get()
    url = reverse("admin:invoices_invoice_credit", args=[month.issued.pk])
    each_refused(
        [*ALWAYS_REFUSED, "-1", "0"],
        lambda amount: client.post(
            url,
            {
                "mode": "lines",
                f"line_{line.pk}": amount,
                "reason": "Goodwill",
                "token": uuid.uuid4().hex,
            },
        ),
    )


def discount_form(**fields) -> dict:
    data = {
        "customer": "",
        "application": "",
        "percent": "",
        "amount_off_0": "",
        "amount_off_1": "CNY",
        "first_day": "2026-11-01",
        "last_day": "",
        "reference": "CD-9",
        "notes": "",
    }
    data.update(fields)
    return data


def test_discount_amount_percent_and_currency(client, manager, month):
    as_user(client, manager)
    url = reverse("admin:plans_discount_add")
    customer = str(month.beta.pk)
    each_refused(
        [*ALWAYS_REFUSED, "-1", "0"],
        lambda amount: client.post(url, discount_form(customer=customer, amount_off_0=amount)),
    )
    each_refused(
        [*ALWAYS_REFUSED, "-1", "0", "100.01"],
        lambda percent: client.post(url, discount_form(customer=customer, percent=percent)),
    )
    each_refused(
        ["USD", "\x00", "x" * 1000],
        lambda currency: client.post(
            url, discount_form(customer=customer, amount_off_0="10.00", amount_off_1=currency)
        ),
    )


def test_vat_rate(client, manager, month):
    as_user(client, manager)
    url = reverse("admin:plans_vatrate_add")
    each_refused(
        # "0.001" is a rate of 0.1%: four decimals are allowed.
        [*[r for r in ALWAYS_REFUSED if r != "0.001"], "-1", "1.5", "0.00001"],
        lambda rate: client.post(url, {"valid_from": "2099-01-01", "rate": rate}),
    )


PREMIUM_PRICE = {
    "minimum_deposit_0": "6000.00",
    "minimum_deposit_1": "CNY",
    "dau_base_fee_0": "6600.00",
    "dau_base_fee_1": "CNY",
    "included_dau": "10000",
    "dau_block_size": "10000",
    "dau_block_price_0": "3300.00",
    "dau_block_price_1": "CNY",
    "note": "",
}


def test_plan_price(client, manager, month):
    as_user(client, manager)
    premium = Plan.objects.get(code="premium")
    url = reverse("admin:plans_planprice_add")

    def post(field, value):
        data = {"plan": premium.pk, "valid_from": "2027-01-01", **PREMIUM_PRICE, field: value}
        return client.post(url, data)

    for field in ("dau_base_fee_0", "dau_block_price_0", "minimum_deposit_0"):
        each_refused([*ALWAYS_REFUSED, "-1"], lambda amount, field=field: post(field, amount))
    each_refused(
        ["-1", "1e3", "NaN", "9" * 40, "１０", "\x00"], lambda count: post("included_dau", count)
    )


# --- uploads -------------------------------------------------------------------------------

CSV_HEADER = "app_key,date,dau,delivered_messages\n"
BAD_USAGE_CSVS = [
    ("usage.csv", b""),
    ("usage.csv", b"\x00" * 1000),
    ("usage.csv", b"\xff\xfe" + CSV_HEADER.encode("utf-16-le")),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01,1e3,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01,NaN,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01,-5,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01," + "9" * 400 + ",0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01,１０,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app\x00,2026-11-01,10,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-13-01,10,0\n").encode()),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01,10\n").encode()),
    ("usage.csv", (CSV_HEADER + '"unterminated,2026-11-01,10,0\n').encode()),
    ("usage.csv", ("名称,日期\n" + "x" * 200_000 + "\n").encode("gb18030")),
    ("usage.csv", CSV_HEADER.encode() + b"\xc3\x28,2026-11-01,10,0\n"),
    ("usage.xlsx", b"PK\x03\x04"),
    ("usage.csv", (CSV_HEADER + "alpha-app,2026-11-01," + "9" * 200_000 + ",0\n").encode()),
]


def test_usage_csv_import(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_dailyusage_import")
    each_refused(
        BAD_USAGE_CSVS,
        lambda file: client.post(
            url, {"file": SimpleUploadedFile(file[0], file[1], content_type="text/csv")}
        ),
    )


CMB_HEADER = "交易日期,交易流水号,借方金额,贷方金额,对方户名,对方账号,摘要\n"
BAD_STATEMENTS = [
    ("csv", b""),
    ("csv", b"\x00" * 1000),
    ("csv", CMB_HEADER.encode("utf-16")),
    ("csv", (CMB_HEADER + "2026-11-02,T1,,1e3,张三,6222,IMWANTAN9X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,,NaN,张三,6222,IMWANTAN9X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,,Infinity,张三,6222,IMWANTAN9X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,," + "9" * 400 + ",张三,6222,X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,,１００.00,张三,6222,X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1\x00,,100.00,张三,6222,X\n").encode()),
    ("csv", (CMB_HEADER + "2026-02-30,T1,,100.00,张三,6222,X\n").encode()),
    ("csv", (CMB_HEADER + "9999999-11-02,T1,,100.00,张三,6222,X\n").encode()),
    ("csv", CMB_HEADER.encode("gb18030") + b"\x81\x30\x81,T1,,100.00,x,y,z\n"),
    ("csv", (CMB_HEADER + "x" * 3_000_000 + "\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,,-100.00,张三,6222,IMWANTAN9X\n").encode()),
    ("csv", (CMB_HEADER + "2026-11-02,T1,-100.00,,张三,6222,IMWANTAN9X\n").encode()),
    ("mt940", b":20:STATEMENT\n:25:123\n:28C:1/1\n:60F:C261101CNY1e3\n"),
    ("mt940", b":20:X\n:25:123\n:61:2611021102CNaN,00NTRFNONREF//T1\n"),
    ("mt940", b":20:X\n:25:123\n:61:2611021102C" + b"9" * 400 + b",00NTRFNONREF//T1\n"),
    ("mt940", b":20:X\x00\n:25:\x00\n"),
    ("mt940", "：20：全角冒号\n".encode()),
    ("mt940", b"\xff\xfe\x00\x00"),
]


def test_bank_statement_upload(client, clerk, settings):
    settings.BILLING_BANK_ACCOUNT = "6225880212345678"
    as_user(client, clerk)
    url = reverse("admin:accounts_bankstatement_upload")
    each_refused(
        BAD_STATEMENTS,
        lambda file: client.post(
            url, {"file": SimpleUploadedFile(f"statement.{file[0]}", file[1]), "format": file[0]}
        ),
    )


# --- invisible characters in what finance types about a customer --------------------------

# Customer fields the change form edits, with the label its refusal names. The address is a
# text box of several lines: tab and line feed are allowed there.
CUSTOMER_TEXT = {
    "name": "name",
    "address": "address",
    "tax_id": "tax ID",
    "contact_name": "contact name",
    "contact_phone": "contact phone",
    "fapiao_phone": "registered phone",
    "fapiao_bank": "bank",
    "fapiao_bank_account": "bank account",
}


def customer_change(client, customer: Customer, **fields):
    data = {
        "name": customer.name,
        "billing_email": customer.billing_email,
        "preferred_language": "en",
        "low_balance_alert": "runway",
        # The read-only inlines (and the contacts inline) still send their management forms.
        **{
            f"{prefix}-{key}": "0"
            for prefix in ("billing_contacts", "applications", "ledger_entries", "invoices")
            for key in ("TOTAL_FORMS", "INITIAL_FORMS")
        },
        **fields,
    }
    return client.post(reverse("admin:accounts_customer_change", args=[customer.pk]), data)


def customer_text_problems(client, customer: Customer, pairs) -> list[str]:
    """Posts each (field, value) to the customer's change form: refused with the field named
    and nothing changed, or (a textarea's own tab and line feed in the address) saved."""
    problems = []
    for field, value in pairs:
        before = list(Customer.objects.filter(pk=customer.pk).values())
        response = customer_change(client, customer, **{field: value})
        if invisible_character(value, multiline=field == "address") is None:
            customer.refresh_from_db()
            if response.status_code != 302 or getattr(customer, field) != value:
                problems.append(f"{field} {value!r}: not saved ({response.status_code})")
            continue
        expected = [invisible_character_message(value, label=CUSTOMER_TEXT[field])]
        errors = response.context["adminform"].form.errors if response.status_code == 200 else {}
        if list(errors.get(field, [])) != expected:
            problems.append(f"{field} {value!r}: {response.status_code} {dict(errors)}")
        if list(Customer.objects.filter(pk=customer.pk).values()) != before:
            problems.append(f"{field} {value!r}: the customer changed")
    return problems


def test_invisible_characters_in_the_customer_form_are_refused(client, clerk, month):
    """The fields x values table's diagonal (each field and each value once); the whole table
    is the slow test below."""
    as_user(client, clerk)
    assert (
        customer_text_problems(client, month.alpha, diagonal(list(CUSTOMER_TEXT), INVISIBLE_TEXT))
        == []
    )
    # The textarea's own line break is kept in the address.
    assert (
        customer_text_problems(client, month.alpha, [("address", "1 Century Ave\r\nPudong")]) == []
    )


@pytest.mark.slow
def test_invisible_characters_in_the_customer_form_every_field_and_value(client, clerk, month):
    as_user(client, clerk)
    pairs = [(field, value) for field in CUSTOMER_TEXT for value in INVISIBLE_TEXT]
    assert customer_text_problems(client, month.alpha, pairs) == []


def test_invisible_characters_in_a_billing_contact_name_are_refused(client, clerk, month):
    as_user(client, clerk)
    contacts = list(BillingContact.objects.order_by("pk").values())
    for value in INVISIBLE_TEXT:
        response = customer_change(
            client,
            month.alpha,
            **{
                "billing_contacts-TOTAL_FORMS": "1",
                "billing_contacts-0-email": "ap@alpha.example",
                "billing_contacts-0-name": value,
                "billing_contacts-0-receives_invoices": "on",
            },
        )
        assert response.status_code == 200, value
        [formset] = [
            f
            for f in response.context["inline_admin_formsets"]
            if f.formset.prefix == "billing_contacts"
        ]
        assert formset.formset.errors == [
            {"name": [invisible_character_message(value, label="contact name")]}
        ], value
    assert list(BillingContact.objects.order_by("pk").values()) == contacts


def test_invisible_characters_in_a_new_customer_are_refused(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_add")
    data = {"external_id": "cust-new", "name": "New Co", "billing_email": "ap@new.example.com"}
    for field, value in diagonal(
        ["name", "tax_id", "contact_name", "contact_phone"], INVISIBLE_TEXT
    ):
        response = client.post(url, {**data, field: value})
        assert response.status_code == 200, (field, value)
        form = response.context["form"]
        assert form.errors == {
            field: [invisible_character_message(value, label=CUSTOMER_TEXT[field])]
        }, (field, value)
    assert not Customer.objects.filter(external_id="cust-new").exists()


def test_invisible_characters_in_an_application_name_are_refused(client, clerk, month):
    """The add form and the change form (where the name is the one field finance edits)."""
    as_user(client, clerk)
    add_url = reverse("admin:accounts_application_add")
    change_url = reverse("admin:accounts_application_change", args=[month.alpha_app.pk])
    data = {"customer": month.alpha.pk, "app_key": "alpha-2", "data_center": "singapore"}
    before = list(Application.objects.order_by("pk").values())
    for value in INVISIBLE_TEXT:
        expected = {"name": [invisible_character_message(value, label="name")]}
        added = client.post(add_url, {**data, "name": value})
        assert added.status_code == 200, value
        assert added.context["form"].errors == expected, value
        changed = client.post(change_url, {"name": value})
        assert changed.status_code == 200, value
        assert changed.context["adminform"].form.errors == expected, value
    assert list(Application.objects.order_by("pk").values()) == before
    # A visible name of any script is saved.
    assert client.post(change_url, {"name": "阿尔法 Chat"}).status_code == 302
    month.alpha_app.refresh_from_db()
    assert month.alpha_app.name == "阿尔法 Chat"


def test_an_invisible_character_in_a_fapiao_rejection_reason_is_refused(client, clerk, month):
    request = fapiao_request_create(
        invoice=month.issued,
        customer=month.issued.customer,
        details=BuyerDetails(kind="ordinary", buyer_title="Alpha Ltd", buyer_tax_id=USCC),
        now=month.issued.issued_at,
    )
    as_user(client, clerk)
    url = reverse("admin:invoices_fapiaorequest_change", args=[request.pk])
    for reason in ("Wrong title\u202e", "Wrong\x1btitle"):
        response = client.post(url, {"decision": "reject", "rejection_reason": reason})
        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {
            "rejection_reason": [invisible_character_message(reason, label="rejection reason")]
        }
        request.refresh_from_db()
        assert (request.status, request.rejection_reason) == ("pending", "")
    # Several lines are fine: it is a text box.
    response = client.post(
        url, {"decision": "reject", "rejection_reason": "Wrong title.\r\nCall us."}
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.rejection_reason) == ("rejected", "Wrong title.\r\nCall us.")

"""Customers in the back-office: the balance panel, and the deposit and adjustment forms
(idempotent by the page's token; bad input is a form error and records nothing)."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Customer, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import record_adjustment
from invoices.selectors import customer_financials, financials_for_customers
from tests.admin.conftest import as_user, form_errors, post_confirmed
from tests.factories import NOW, CustomerFactory

pytestmark = pytest.mark.django_db


def deposit_url(customer):
    return reverse("admin:accounts_customer_deposit", args=[customer.pk])


def adjust_url(customer):
    return reverse("admin:accounts_customer_adjust", args=[customer.pk])


def test_customer_page_shows_balance_recommended_balance_and_days_left(client, clerk, month):
    # November so far: Premium with no usage yet -> 6,000.00 a month; balance 20,000 - 6,000.
    response = as_user(client, clerk).get(
        reverse("admin:accounts_customer_change", args=[month.alpha.pk])
    )
    body = response.content.decode()
    assert '<strong class="billing-amount " data-testid="balance">¥14,000.00</strong>' in body
    assert "¥6,000.00" in body  # run-rate
    assert "¥18,000.00" in body and "short by ¥4,000.00" in body
    assert "70 days" in body  # 14,000 / (6,000 / 30 days)
    assert "Not in arrears" in body
    assert "Record deposit" in body and "Manual adjustment" in body
    # Inlines: the application, the ledger (deposit and the invoice debit) and the invoice.
    assert "alpha-app" in body and "-¥6,000.00" in body and month.issued.number in body


def test_customer_list_rates_the_page_like_the_detail(client, clerk, month):
    response = as_user(client, clerk).get(reverse("admin:accounts_customer_changelist"))
    rows = {c.pk: c for c in response.context["cl"].result_list}
    alpha = rows[month.alpha.pk]
    assert alpha.ledger_total == Decimal("14000.00")
    assert alpha._financials == customer_financials(customer=month.alpha, today=NOW.date())
    body = response.content.decode()
    assert "¥14,000.00" in body and "¥18,000.00" in body


def test_batched_financials_equal_the_single_customer_selector(month):
    customers = list(Customer.objects.order_by("pk"))
    today = NOW.date()
    batched = financials_for_customers(customers=customers, today=today)
    for customer in customers:
        assert batched[customer.pk] == customer_financials(customer=customer, today=today)


def test_arrears_state_and_suspension_date_are_shown(client, clerk, price_book, frozen_now):
    customer = CustomerFactory(name="Late Payer")

    record_adjustment(
        customer=customer,
        amount=Decimal("-100.00"),
        reason="test: negative balance",
        idempotency_key="neg",
        now=NOW,
    )
    customer.refresh_from_db()
    body = (
        as_user(client, clerk)
        .get(reverse("admin:accounts_customer_change", args=[customer.pk]))
        .content.decode()
    )
    assert "In arrears since 2026-11-02; service is suspended on 2026-11-09" in body
    assert "-¥100.00" in body


def test_deposit_form_records_once_even_when_sent_twice(client, clerk, month):
    as_user(client, clerk)
    page = client.get(deposit_url(month.alpha))
    token = page.context["form"].initial["token"]
    data = {"amount": "5000.00", "bank_reference": "ICBC 2026-11-02 0042", "token": token}
    first = post_confirmed(client, deposit_url(month.alpha), data, follow=True)
    second = post_confirmed(client, deposit_url(month.alpha), data, follow=True)
    entries = LedgerEntry.objects.filter(customer=month.alpha, kind="deposit")
    assert entries.count() == 2  # the fixture's deposit and this one
    entry = entries.latest("id")
    assert entry.amount.amount == Decimal("5000.00")
    assert entry.reference == "ICBC 2026-11-02 0042"
    assert entry.created_by == clerk
    assert ledger_balance(customer=month.alpha) == Decimal("19000.00")
    assert "Deposit of ¥5,000.00 recorded." in first.content.decode()
    assert "was already recorded" in second.content.decode()
    assert second.redirect_chain[-1][0] == reverse(
        "admin:accounts_customer_change", args=[month.alpha.pk]
    )


def test_deposit_amount_may_have_grouping_commas(client, clerk):
    customer = CustomerFactory()
    post_confirmed(
        as_user(client, clerk),
        deposit_url(customer),
        {"amount": "¥12,345.60", "bank_reference": "R", "token": uuid.uuid4().hex},
    )
    assert ledger_balance(customer=customer) == Decimal("12345.60")


def test_two_deposits_of_the_same_amount_from_two_pages_are_two_deposits(client, clerk, month):
    as_user(client, clerk)
    for reference in ("BANK-A", "BANK-B"):
        token = client.get(deposit_url(month.alpha)).context["form"].initial["token"]
        post_confirmed(
            client,
            deposit_url(month.alpha),
            {"amount": "100.00", "bank_reference": reference, "token": token},
        )
    assert ledger_balance(customer=month.alpha) == Decimal("14200.00")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": ""}, "amount", "This field is required."),
        ({"amount": "0"}, "amount", "greater than or equal to 0.01"),
        ({"amount": "-50.00"}, "amount", "greater than or equal to 0.01"),
        ({"amount": "abc"}, "amount", "Enter a number."),
        ({"amount": "60,00"}, "amount", "Enter a number."),
        ({"amount": "6,0000.00"}, "amount", "Enter a number."),
        ({"amount": "NaN"}, "amount", "Enter a number."),
        ({"amount": "10.001"}, "amount", "no more than 2 decimal places"),
        ({"amount": "1000000000000.00"}, "amount", "less than or equal to"),
        ({"bank_reference": ""}, "bank_reference", "This field is required."),
        ({"bank_reference": "   "}, "bank_reference", "This field is required."),
        ({"bank_reference": "x" * 201}, "bank_reference", "at most 200 characters"),
        ({"token": ""}, "token", "This field is required."),
        ({"token": "not-a-token"}, "token", "stale or was tampered with"),
    ],
)
def test_bad_deposit_input_is_a_form_error_and_records_nothing(client, clerk, data, field, message):
    customer = CustomerFactory()
    before = LedgerEntry.objects.count()
    post = {"amount": "100.00", "bank_reference": "REF", "token": uuid.uuid4().hex, **data}
    response = post_confirmed(as_user(client, clerk), deposit_url(customer), post)
    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in text for text in errors[field]), errors
    assert "Nothing was changed." in response.content.decode()
    assert LedgerEntry.objects.count() == before


def test_a_reused_token_with_another_amount_is_refused(client, clerk, month):
    as_user(client, clerk)
    token = uuid.uuid4().hex
    post_confirmed(
        client, deposit_url(month.alpha), {"amount": "10.00", "bank_reference": "R", "token": token}
    )
    response = post_confirmed(
        client, deposit_url(month.alpha), {"amount": "99.00", "bank_reference": "R", "token": token}
    )
    assert response.status_code == 200
    assert "already used for a different entry" in str(form_errors(response))
    assert ledger_balance(customer=month.alpha) == Decimal("14010.00")


def test_manual_adjustment_needs_a_reason_and_can_be_negative(client, clerk, month):
    as_user(client, clerk)
    token = client.get(adjust_url(month.alpha)).context["form"].initial["token"]
    refused = post_confirmed(
        client, adjust_url(month.alpha), {"amount": "-250.50", "reason": "  ", "token": token}
    )
    assert refused.status_code == 200
    assert form_errors(refused) == {"reason": ["This field is required."]}
    zero = post_confirmed(
        client, adjust_url(month.alpha), {"amount": "0.00", "reason": "x", "token": token}
    )
    assert form_errors(zero) == {"amount": ["An adjustment of 0.00 changes nothing."]}
    assert ledger_balance(customer=month.alpha) == Decimal("14000.00")

    done = post_confirmed(
        client,
        adjust_url(month.alpha),
        {"amount": "-250.50", "reason": "Bank fee charged on the transfer", "token": token},
    )
    assert done.status_code == 302
    entry = LedgerEntry.objects.get(customer=month.alpha, kind="adjustment")
    assert (entry.amount.amount, entry.reason, entry.created_by) == (
        Decimal("-250.50"),
        "Bank fee charged on the transfer",
        clerk,
    )
    assert ledger_balance(customer=month.alpha) == Decimal("13749.50")


def test_customer_add_goes_through_the_service_and_refuses_a_taken_id(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_add")
    data = {
        "external_id": "cust-new",
        "name": "New Co",
        "billing_email": "ap@new.example.com",
        "address": "",
        "tax_id": "",
        "contact_name": "",
        "contact_phone": "",
    }
    created = client.post(url, data)
    assert created.status_code == 302
    assert Customer.objects.get(external_id="cust-new").name == "New Co"
    taken = client.post(url, {**data, "name": "Other"})
    assert taken.status_code == 200
    assert "external_id" in form_errors(taken)
    bad_email = client.post(url, {**data, "external_id": "cust-x", "billing_email": "nope"})
    assert "billing_email" in form_errors(bad_email)
    assert Customer.objects.filter(external_id__in=["cust-new", "cust-x"]).count() == 1


def test_application_add_starts_on_free(client, clerk, month):
    as_user(client, clerk)
    response = client.post(
        reverse("admin:accounts_application_add"),
        {
            "customer": month.alpha.pk,
            "app_key": "alpha-2",
            "name": "Second",
            "data_center": "singapore",
        },
    )
    assert response.status_code == 302
    app = month.alpha.applications.get(app_key="alpha-2")
    assert app.plan_changes.get().plan.code == "free"
    duplicate = client.post(
        reverse("admin:accounts_application_add"),
        {"customer": month.alpha.pk, "app_key": "alpha-2", "name": "X", "data_center": "singapore"},
    )
    assert "app_key" in form_errors(duplicate)
    assert month.alpha.applications.count() == 2


def test_customers_are_never_deleted(client, manager, month):
    response = as_user(client, manager).post(
        reverse("admin:accounts_customer_delete", args=[month.alpha.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Customer.objects.filter(pk=month.alpha.pk).exists()

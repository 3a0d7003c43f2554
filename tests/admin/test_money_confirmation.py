"""Deposits, adjustments and credit notes show what they will do (the balance after, arrears and
the suspension day) and write nothing until confirmed; the confirmation posts the same token,
so confirming twice records once."""

import datetime as dt
import html
import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.balance_preview import balance_change_preview
from accounts.models import AdjustmentRequest, Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import record_adjustment
from invoices.documents.services import credit_note_create
from invoices.models import CreditNote
from tests.accounts.test_promo_credit_credit_notes import issued_invoice
from tests.admin.conftest import as_user, post_confirmed
from tests.factories import NOW

pytestmark = pytest.mark.django_db

BILLING_DAY = dt.date(2026, 11, 2)


def counts():
    return (
        LedgerEntry.objects.count(),
        AdjustmentRequest.objects.count(),
        CreditNote.objects.count(),
        CustomerEvent.objects.count(),
    )


def confirm(client, url, page, follow=False, **override):
    fields: dict[str, list[str]] = {}
    for name, value in page.context["resend"]:
        fields.setdefault(name, []).append(value)
    return client.post(
        url,
        {**fields, "_seen_balance": page.context["seen_balance"], "_confirm": "x", **override},
        follow=follow,
    )


def adjust_url(customer):
    return reverse("admin:accounts_customer_adjust", args=[customer.pk])


def test_an_adjustment_into_arrears_says_the_suspension_day_and_writes_only_when_confirmed(
    client, manager, month
):
    as_user(client, manager)
    url = adjust_url(month.alpha)
    form = {"amount": "-14500.00", "reason": "Refund sent by bank", "token": uuid.uuid4().hex}
    before = counts()

    page = client.post(url, form)

    assert page.status_code == 200
    assert counts() == before
    body = page.content.decode()
    assert "Nothing is written until you confirm." in body
    assert "¥14,000.00" in body and "-¥500.00" in body and "-¥14,500.00" in body
    assert (
        "Alpha Ltd goes into arrears; its applications will be suspended on 2026-11-09 "
        "unless the balance is back at zero or above before then." in body
    )
    assert page.context["preview"].suspension_on == dt.date(2026, 11, 9)

    done = confirm(client, url, page)
    again = confirm(client, url, page)

    assert (done.status_code, again.status_code) == (302, 302)
    entry = LedgerEntry.objects.get(customer=month.alpha, kind="adjustment")
    assert (entry.amount.amount, entry.created_by) == (Decimal("-14500.00"), manager)
    assert counts()[0] == before[0] + 1
    assert ledger_balance(customer=month.alpha) == Decimal("-500.00")
    assert Customer.objects.get(pk=month.alpha.pk).arrears_since == BILLING_DAY


def test_a_deposit_out_of_arrears_calls_the_suspension_off(client, clerk, month):
    record_adjustment(
        customer=month.alpha,
        amount=Decimal("-15000.00"),
        reason="Bank fee",
        idempotency_key="fee-1",
        now=NOW,
    )
    month.alpha.refresh_from_db()
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_deposit", args=[month.alpha.pk])
    before = counts()

    page = client.post(
        url, {"amount": "1000.00", "bank_reference": "ICBC-9", "token": uuid.uuid4().hex}
    )

    assert counts() == before
    assert page.context["preview"].balance_after == Decimal("0.00")
    assert (
        "Alpha Ltd is out of arrears; the suspension planned for 2026-11-09 is called off."
        in page.content.decode()
    )
    assert confirm(client, url, page).status_code == 302
    assert ledger_balance(customer=month.alpha) == Decimal("0.00")
    assert Customer.objects.get(pk=month.alpha.pk).arrears_since is None


def test_a_proposed_adjustment_says_it_waits_for_approval(client, clerk, month):
    as_user(client, clerk)
    page = client.post(
        adjust_url(month.alpha),
        {"amount": "500.00", "reason": "Goodwill", "token": uuid.uuid4().hex},
    )
    assert "needs a finance manager&#x27;s approval" in page.content.decode()
    assert AdjustmentRequest.objects.count() == 0


def test_a_balance_that_moved_before_confirming_is_shown_again(client, manager, month):
    as_user(client, manager)
    url = adjust_url(month.alpha)
    page = client.post(url, {"amount": "-100.00", "reason": "Fee", "token": uuid.uuid4().hex})
    record_adjustment(
        customer=month.alpha,
        amount=Decimal("-13950.00"),
        reason="Another fee",
        idempotency_key="fee-2",
        now=NOW,
    )
    before = counts()

    again = confirm(client, url, page)

    assert again.status_code == 200 and counts() == before
    body = again.content.decode()
    assert "The balance changed since this page was shown" in body
    assert "Alpha Ltd goes into arrears; its applications will be suspended on 2026-11-09" in body
    assert confirm(client, url, again).status_code == 302
    assert ledger_balance(customer=month.alpha) == Decimal("-50.00")


def test_change_goes_back_to_the_form_with_the_values(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_deposit", args=[month.alpha.pk])
    page = client.post(url, {"amount": "10.00", "bank_reference": "R", "token": uuid.uuid4().hex})
    before = counts()
    back = confirm(client, url, page, _edit="Change")
    assert back.status_code == 200 and counts() == before
    assert back.context["form"]["amount"].value() == "10.00"


def test_a_credit_note_shows_its_consequence_and_issues_once(client, manager, month):
    record_adjustment(
        customer=month.alpha,
        amount=Decimal("-16000.00"),
        reason="Chargeback",
        idempotency_key="cb-1",
        now=NOW,
    )
    as_user(client, manager)
    url = reverse("admin:invoices_invoice_credit", args=[month.issued.pk])
    before = counts()

    page = client.post(url, {"mode": "whole", "reason": "Wrong plan", "token": uuid.uuid4().hex})

    assert page.status_code == 200 and counts() == before
    body = page.content.decode()
    assert "-¥2,000.00" in body and "¥4,000.00" in body and "¥6,000.00" in body
    assert (
        "Alpha Ltd is out of arrears; the suspension planned for 2026-11-09 is called off." in body
    )
    # No promotional credit paid this invoice: all of it goes to the paid balance.
    assert returns_shown(page) == ("¥0.00", "¥6,000.00")
    done = confirm(client, url, page, follow=True)
    assert done.status_code == 200
    assert "issued: ¥6,000.00 credited to Alpha Ltd's balance." in html.unescape(
        done.content.decode()
    )
    assert confirm(client, url, page).status_code == 302
    assert CreditNote.objects.get().total.amount == Decimal("6000.00")
    assert ledger_balance(customer=month.alpha) == Decimal("4000.00")


def test_a_credit_note_says_what_went_back_as_promotional_credit(client, manager, price_book):
    # 8,400.00 of which promotional credit paid 3,000.00: crediting it whole gives the
    # promotion back first, as promotion (`credit_note_promo_split`), the rest to the paid balance.
    invoice = issued_invoice(grant="3000.00", balance="10000.00")
    as_user(client, manager)
    url = reverse("admin:invoices_invoice_credit", args=[invoice.pk])
    page = client.post(url, {"mode": "whole", "reason": "Outage", "token": uuid.uuid4().hex})

    done = confirm(client, url, page, follow=True)

    assert done.status_code == 200
    note = CreditNote.objects.get(invoice=invoice)
    assert (note.total.amount, note.promo_credit_returned) == (
        Decimal("8400.00"),
        Decimal("3000.00"),
    )
    assert (
        f"Credit note {note.number} of ¥8,400.00 issued: ¥3,000.00 returned as promotional "
        "credit, ¥5,400.00 credited to the paid balance." in html.unescape(done.content.decode())
    )


def returns_shown(page) -> tuple[str, str]:
    """The confirmation page's (promotional credit returned, paid balance returned) figures."""
    found = re.findall(
        r"<span>(Returned as promotional credit|Credited to the paid balance)</span>"
        r"<strong>([^<]*)</strong>",
        html.unescape(page.content.decode()),
    )
    assert [label for label, _ in found] == [
        "Returned as promotional credit",
        "Credited to the paid balance",
    ]
    return found[0][1], found[1][1]


def test_the_credit_note_confirmation_shows_the_promotional_and_paid_parts(
    client, manager, price_book
):
    # Promotional credit paid 3,000.00 of 8,400.00 and an earlier note gave 2,000.00 of it
    # back: crediting the 6,400.00 left returns the other 1,000.00 as promotion, 5,400.00 paid.
    invoice = issued_invoice(grant="3000.00", balance="10000.00")
    premium = invoice.lines.get(amount=Decimal("6000.00"))
    credit_note_create(
        invoice=invoice,
        line_amounts={premium.pk: Decimal("2000.00")},
        reason="Outage",
        now=NOW,
        idempotency_key="cn-before",
    )
    as_user(client, manager)
    url = reverse("admin:invoices_invoice_credit", args=[invoice.pk])
    page = client.post(url, {"mode": "whole", "reason": "Outage", "token": uuid.uuid4().hex})

    assert page.status_code == 200
    assert CreditNote.objects.filter(invoice=invoice).count() == 1
    assert returns_shown(page) == ("¥1,000.00", "¥5,400.00")
    confirm(client, url, page)
    note = CreditNote.objects.filter(invoice=invoice).latest("id")
    # What the page said is what was written.
    assert (note.promo_credit_returned, note.total.amount - note.promo_credit_returned) == (
        Decimal("1000.00"),
        Decimal("5400.00"),
    )


def test_preview_of_a_suspended_customer(month):
    Customer.objects.filter(pk=month.beta.pk).update(
        arrears_since=dt.date(2026, 10, 20), suspended_at=NOW
    )
    beta = Customer.objects.get(pk=month.beta.pk)
    # Beta's balance: 10,000.00 (its October invoice is held, not debited).
    still = balance_change_preview(customer=beta, amount=Decimal("-10001.00"), today=BILLING_DAY)
    assert (still.balance_after, still.arrears_since, still.suspension_on) == (
        Decimal("-1.00"),
        dt.date(2026, 10, 20),
        None,
    )
    assert "stays in arrears (since 2026-10-20); its applications stay suspended" in (
        still.consequence
    )
    back = balance_change_preview(customer=beta, amount=Decimal("1.00"), today=BILLING_DAY)
    assert (
        back.consequence
        == "Beta Ltd is out of arrears; its suspended applications are reactivated."
    )


def test_post_confirmed_helper_is_what_the_page_does(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_customer_deposit", args=[month.alpha.pk])
    response = post_confirmed(
        client, url, {"amount": "1.00", "bank_reference": "R", "token": uuid.uuid4().hex}
    )
    assert response.status_code == 302
    assert ledger_balance(customer=month.alpha) == Decimal("14001.00")

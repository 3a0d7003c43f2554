"""The customer sees promotional credit apart from the paid balance, and what it paid of an
invoice: invoice page (English and Chinese), balance page, PDF and the invoice e-mail."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from freezegun import freeze_time

from invoices.documents.pdf import render_invoice_pdf
from invoices.documents.services import bill_customer
from invoices.models import Invoice
from tests.factories import promo_grant
from tests.portal.conftest import OCTOBER, at
from tests.portal.test_pages import text_of
from tests.portal.test_pdf import pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def promo_invoice(acme, django_capture_on_commit_callbacks):
    """Acme's October invoice (20,129.03) issued on 2 November: two grants valid that day pay
    8,000.00 of it (the one expiring first, then the other), the paid balance the rest."""
    promo_grant(acme, "5000.00", dt.date(2026, 11, 30), reason="Double 11")
    promo_grant(acme, "3000.00", dt.date(2026, 12, 31), reason="Referral bonus")
    with django_capture_on_commit_callbacks(execute=True):
        assert bill_customer(customer=acme, period=OCTOBER, now=at(2026, 11, 2, 0)) == "issued"
    return Invoice.objects.get(customer=acme)


def test_the_invoice_says_what_promotional_credit_paid(client_for, acme_user, promo_invoice):
    # 20,129.03 = 5,000.00 + 3,000.00 of credit + 12,129.03 from the paid balance.
    assert promo_invoice.promo_credit_applied == Decimal("8000.00")
    assert promo_invoice.amount_due_from_balance == Decimal("12129.03")
    client = client_for(acme_user)
    url = reverse("portal:invoice-detail", args=[promo_invoice.number])
    with freeze_time("2026-11-20 10:00:00+08:00"):
        english = text_of(client.get(url))
        client.cookies["django_language"] = "zh-hans"
        chinese = text_of(client.get(url))

    assert "Paid by promotional credit ¥8,000.00" in english
    assert "Debited from balance ¥12,129.03" in english
    assert "促销赠送额度抵扣 ¥8,000.00" in chinese

    text = pdf_text(render_invoice_pdf(invoice=promo_invoice))
    assert "Paid by promotional credit" in text and "促销赠送额度抵扣" in text
    assert "¥8,000.00" in text and "¥12,129.03 · 2026-11-02" in text

    [message] = [m for m in mail.outbox if promo_invoice.number in m.subject]
    assert (
        "Promotional credit paid ¥8,000.00 of its ¥20,129.03; ¥12,129.03 was deducted from "
        "your prepaid balance." in message.body
    )


def test_the_balance_page_keeps_promotional_credit_apart(client_for, acme_user, acme):
    promo_grant(acme, "300.00", dt.date(2026, 12, 31), reason="Referral bonus")
    promo_grant(acme, "50.00", dt.date(2026, 11, 5), reason="Old offer")  # expired by the 20th
    client = client_for(acme_user)
    with freeze_time("2026-11-20 10:00:00+08:00"):
        english = text_of(client.get(reverse("portal:balance")))
        client.cookies["django_language"] = "zh-hans"
        chinese = text_of(client.get(reverse("portal:balance")))

    # Deposit 50,000.00; credit held 350.00 until the expired grant's lapse is written.
    assert "Paid balance ¥50,000.00; promotional credit ¥350.00." in english
    assert "Referral bonus 2026-12-31 ¥300.00" in english
    assert "Old offer 2026-11-05" not in english  # not available any more
    assert "Promotional credit" in english
    assert "Referral bonus · valid through 2026-12-31" in english  # its ledger row
    assert "付费余额 ¥50,000.00；促销赠送额度 ¥350.00。" in chinese
    assert "有效期至 2026-12-31" in chinese


def test_the_balance_page_reads_promotional_credit_in_one_query(client_for, acme_user, acme):
    promo_grant(acme, "300.00", dt.date(2026, 12, 31), reason="Referral bonus")
    client = client_for(acme_user)
    with freeze_time("2026-11-20 10:00:00+08:00"):
        with CaptureQueriesContext(connection) as queries:
            page = text_of(client.get(reverse("portal:balance")))

    assert "Paid balance ¥50,000.00; promotional credit ¥300.00." in page
    # Held and available from one read of the grants (accounts.promo_credit.promo_credit),
    # not a sum of the ledger's promotional kinds beside it.
    assert len([q for q in queries if "'promo_grant'" in q["sql"]]) == 1

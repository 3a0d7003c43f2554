"""The portal on documents made by the real billing services (invoices.documents.services), not only by
the test factories: numbers, debit and credit references line up with what the pages read."""

from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from invoices.documents.pdf import invoice_ledger_entry, render_invoice_pdf
from invoices.documents.services import credit_note_create, invoice_issue, invoice_rate
from tests.portal.conftest import OCTOBER, at
from tests.portal.test_pages import text_of
from tests.portal.test_pdf import pdf_text

pytestmark = pytest.mark.django_db


def test_issued_by_the_billing_service_reads_on_the_portal(client_for, acme, acme_user):
    draft = invoice_rate(customer=acme, period=OCTOBER, now=at(2026, 11, 2, 0))
    client = client_for(acme_user)
    with freeze_time("2026-11-02 08:00:00+08:00"):
        # A draft is invisible until it is issued.
        assert "No invoices yet" in text_of(client.get(reverse("portal:invoice-list")))
    invoice = invoice_issue(invoice=draft, now=at(2026, 11, 2, 0))
    debit = invoice_ledger_entry(invoice=invoice)
    assert debit is not None and debit.amount.amount == Decimal("-20129.03")

    line = invoice.lines.order_by("position").first()
    note = credit_note_create(
        invoice=invoice,
        line_amounts={line.pk: Decimal("1000.00")},
        reason="Outage on 2026-10-12",
        now=at(2026, 11, 6),
        idempotency_key="portal-test-credit",
    )
    with freeze_time("2026-11-20 10:00:00+08:00"):
        page = text_of(client.get(reverse("portal:invoice-detail", args=[invoice.number])))
        assert "Total ¥20,129.03" in page
        assert "Debited from balance ¥20,129.03 on 2026-11-02" in page
        assert f"{note.number}: ¥1,000.00" in page
        note_page = text_of(client.get(reverse("portal:credit-note-detail", args=[note.number])))
        assert "Credited to balance ¥1,000.00 on 2026-11-06" in note_page
        ledger = text_of(client.get(reverse("portal:balance")))
        assert f"Credit note {note.number} +¥1,000.00 ¥30,870.97" in ledger
    text = pdf_text(render_invoice_pdf(invoice=invoice))
    assert invoice.number in text and "Total 合计 ¥20,129.03" in text

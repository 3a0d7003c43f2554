"""PDF invoices and credit notes: rendered from the frozen documents, Chinese text included."""

import io
from decimal import Decimal

import pytest
from moneyed import Money
from pypdf import PdfReader

from invoices.documents.pdf import render_credit_note_pdf, render_invoice_pdf
from invoices.models import Invoice
from plans.models import PlanPrice
from tests.portal.conftest import OCTOBER
from tests.portal.factories import credit_note, issued_invoice

pytestmark = pytest.mark.django_db


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_invoice_pdf_has_number_totals_lines_and_chinese(acme_invoice):
    text = pdf_text(render_invoice_pdf(invoice=acme_invoice))

    assert acme_invoice.number in text
    assert "Total 合计 ¥20,129.03" in text
    # Lines grouped by application, each with its subtotal and explanation.
    assert "Subtotal acme-chat 小计 ¥16,000.00" in text
    assert "Subtotal acme-live 小计 ¥4,129.03" in text
    assert "peak DAU 25,000 on 2026-10-17: 6,000.00 + 2 x 3,000.00 = 12,000.00" in text
    assert "1 ¥8,000.00 ¥4,129.03" in text  # Ultimate 16 of 31 days
    # Chinese is rendered with a CJK font, not dropped or boxed.
    assert "账单" in text
    assert "尊享版套餐，按峰值日活计算的月费" in text
    assert "峰值日活 25,000（2026-10-17）" in text
    assert "聊天室保活" in text
    # What it took from the prepaid balance.
    assert "¥20,129.03 · 2026-11-02" in text
    assert "DRAFT" not in text


def test_invoice_pdf_is_rendered_from_frozen_data_not_todays_prices(acme, acme_invoice):
    """After issue the customer renames itself and the price book doubles: the PDF keeps the
    name and amounts the invoice was issued with."""
    before = pdf_text(render_invoice_pdf(invoice=acme_invoice))
    acme.name = "Renamed Holdings"
    acme.save()
    # A price in force never changes: the new one is a row that reprices the invoiced month.
    premium = PlanPrice.objects.get(plan__code="premium")
    premium.pk, premium.valid_from = None, acme_invoice.period
    premium.dau_base_fee = Money(Decimal("12000.00"), "CNY")
    premium.save()

    invoice = Invoice.objects.get(pk=acme_invoice.pk)
    after = pdf_text(render_invoice_pdf(invoice=invoice))

    assert "Acme Chat Ltd" in after
    assert "Renamed Holdings" not in after
    assert "¥20,129.03" in after
    assert "¥12,000.00 ¥12,000.00" in after
    assert after == before


def test_credit_note_pdf_has_number_totals_and_chinese(acme_invoice):
    first_line = acme_invoice.lines.order_by("position").first()
    note = credit_note(
        invoice=acme_invoice, amounts={first_line.pk: Decimal("1500.00")}, reason="Outage credit"
    )
    text = pdf_text(render_credit_note_pdf(credit_note=note))

    assert note.number in text
    assert acme_invoice.number in text
    assert "Total credited 冲减合计 ¥1,500.00" in text
    assert "Invoice total 原账单合计 ¥20,129.03" in text
    assert "Outage credit" in text
    assert "贷项通知单" in text
    assert "尊享版套餐，按峰值日活计算的月费" in text


def test_draft_pdf_for_finance_preview_is_marked_not_issued(acme):
    draft = issued_invoice(customer=acme, period=OCTOBER, status=Invoice.Status.DRAFT)
    text = pdf_text(render_invoice_pdf(invoice=draft))
    assert "DRAFT · NOT ISSUED" in text
    assert "草稿，未开具" in text
    assert "¥20,129.03" in text

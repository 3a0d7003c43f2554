"""Invoices in the back-office: filters and search, the review queue, read-only issued
documents, the service buttons (re-rate, issue, credit note), PDF and CSV."""

import csv
import datetime as dt
import io
import uuid
import zipfile
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.selectors import ledger_balance
from invoices.documents.services import credit_note_create
from invoices.models import CreditNote, Invoice
from plans.models import DedicatedContract
from tests.admin.conftest import as_user, form_errors, post_confirmed
from tests.factories import NOW

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:invoices_invoice_changelist"


def listed(client, query: str) -> set[int]:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200, query
    return {invoice.pk for invoice in response.context["cl"].result_list}


def invoice_url(invoice, name="change"):
    return reverse(f"admin:invoices_invoice_{name}", args=[invoice.pk])


def test_list_filters_and_search(client, auditor, month):
    as_user(client, auditor)
    issued, held = month.issued.pk, month.held.pk
    assert month.issued.number == "INV-2026-000001"
    assert listed(client, "") == {issued, held}
    assert listed(client, "?period=2026-10") == {issued, held}
    assert listed(client, "?period=2026-09") == set()
    assert listed(client, "?status__exact=issued") == {issued}
    assert listed(client, "?held=yes") == {held}
    assert listed(client, "?held=no") == {issued}
    assert listed(client, "?customer=cust-beta") == {held}
    assert listed(client, "?customer=alpha") == {issued}
    assert listed(client, "?plan=premium") == {issued, held}
    assert listed(client, "?plan=ultimate") == set()
    assert listed(client, "?q=beta-app") == {held}
    assert listed(client, "?q=INV-2026-000001") == {issued}
    assert listed(client, "?q=Alpha") == {issued}
    assert listed(client, "?billing_run__id__exact=0") == set()


def test_review_queue_lists_held_invoices_with_the_reason(client, clerk, month):
    body = as_user(client, clerk).get(reverse("admin:invoices_invoice_review")).content.decode()
    assert "Beta Ltd" in body and "Alpha Ltd" not in body
    assert (
        "beta-app: high-volume application (3,000,000 delivered messages on 2026-10-20, "
        "limit 2,000,000 a day) has no dedicated-service contract"
    ) in body
    assert "¥9,000.00" in body  # Premium at peak DAU 12,000: 6,000 + 1 x 3,000
    # A clerk sees the queue but none of the manager's buttons.
    assert "Issue as it is" not in body and "Add contract for" not in body


def test_issued_invoices_are_read_only(client, manager, month):
    as_user(client, manager)
    page = client.get(invoice_url(month.issued))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    changed = client.post(invoice_url(month.issued), {"status": "draft", "number": "X"})
    assert changed.status_code == 403
    deleted = client.post(invoice_url(month.issued, "delete"), {"post": "yes"})
    assert deleted.status_code == 403
    assert client.get(reverse("admin:invoices_invoice_add")).status_code == 403
    month.issued.refresh_from_db()
    assert (month.issued.number, month.issued.status) == ("INV-2026-000001", "issued")


def test_credit_notes_are_read_only(client, manager, month):

    note = credit_note_create(
        invoice=month.issued, line_amounts=None, reason="test", now=NOW, idempotency_key="k"
    )
    as_user(client, manager)
    url = reverse("admin:invoices_creditnote_change", args=[note.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"reason": "changed"}).status_code == 403
    delete_url = reverse("admin:invoices_creditnote_delete", args=[note.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    note.refresh_from_db()
    assert note.reason == "test"
    pdf = client.get(reverse("admin:invoices_creditnote_pdf", args=[note.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert 'filename="CN-2026-000001.pdf"' in pdf["Content-Disposition"]


def test_manager_clears_a_held_invoice_contract_rerate_issue_credit(client, manager, month):
    as_user(client, manager)
    held = month.held
    page = client.get(invoice_url(held)).content.decode()
    assert "Held for review." in page and "Add dedicated-service contract for beta-app" in page

    contract_url = reverse("admin:accounts_application_contract", args=[month.beta_app.pk])
    token = client.get(contract_url).context["form"].initial["token"]
    added = client.post(
        contract_url,
        {
            "monthly_fee": "20000.00",
            "first_day": "2026-10-01",
            "last_day": "",
            "reference": "DS-2026-007",
            "notes": "",
            "token": token,
            "next": invoice_url(held),
        },
    )
    assert added.status_code == 302 and added["Location"] == invoice_url(held)
    contract = DedicatedContract.objects.get(application=month.beta_app)
    assert (contract.monthly_fee.amount, contract.created_by) == (Decimal("20000.00"), manager)

    client.post(invoice_url(held, "rerate"))
    held.refresh_from_db()
    assert (held.status, held.total.amount, held.hold_reason) == ("draft", Decimal("20000.00"), "")

    client.post(invoice_url(held, "issue"))
    held.refresh_from_db()
    assert (held.status, held.number, held.issued_by) == ("issued", "INV-2026-000002", manager)
    assert ledger_balance(customer=month.beta) == Decimal("-10000.00")

    line = held.lines.get()
    credit_url = invoice_url(held, "credit")
    token = client.get(credit_url).context["form"].initial["token"]
    credited = post_confirmed(
        client,
        credit_url,
        {
            "mode": "lines",
            f"line_{line.pk}": "5000.00",
            "reason": "Contract starts mid-month",
            "token": token,
        },
    )
    assert credited.status_code == 302
    note = CreditNote.objects.get(invoice=held)
    assert (note.total.amount, note.created_by, note.number) == (
        Decimal("5000.00"),
        manager,
        "CN-2026-000001",
    )
    held.refresh_from_db()
    assert held.status == "partially_credited"
    assert ledger_balance(customer=month.beta) == Decimal("-5000.00")
    body = client.get(invoice_url(held)).content.decode()
    assert "CN-2026-000001" in body and "Partly credited" in body


def test_a_held_invoice_is_titled_held_and_its_contract_form_starts_with_its_month(
    client, manager, month
):
    as_user(client, manager)
    held = month.held
    assert str(held) == "Held Beta Ltd 2026-10"
    page = client.get(invoice_url(held))
    assert page.context["title"] == "Invoice held for review: Beta Ltd, 2026-10"
    body = page.content.decode()
    assert "<title>Held Beta Ltd 2026-10 | Invoice held for review: Beta Ltd, 2026-10" in body
    assert "Draft" not in body
    contract_url = reverse("admin:accounts_application_contract", args=[month.beta_app.pk])
    assert f"{contract_url}?period=2026-10&amp;next=" in body

    form_page = client.get(contract_url, {"period": "2026-10", "next": invoice_url(held)})
    assert form_page.context["form"].initial["first_day"] == dt.date(2026, 10, 1)
    assert (
        "Prefilled for the held invoice of 2026-10: the contract starts on 2026-10-01"
        in form_page.content.decode()
    )
    assert 'value="2026-10-01"' in form_page.content.decode()

    token = form_page.context["form"].initial["token"]
    client.post(
        contract_url,
        {"monthly_fee": "20000.00", "first_day": "2026-10-01", "token": token},
    )
    offered = client.get(invoice_url(held)).content.decode()
    assert 'data-testid="rerate-offer"' in offered
    assert "¥20,000.00 a month for beta-app (from 2026-10-01) was added after" in offered
    assert "Re-rate now with the contract" in offered

    client.post(invoice_url(held, "rerate"))
    held.refresh_from_db()
    assert (held.status, held.total.amount) == ("draft", Decimal("20000.00"))
    after = client.get(invoice_url(held))
    assert after.context["title"] == "Invoice draft: Beta Ltd, 2026-10"
    assert 'data-testid="rerate-offer"' not in after.content.decode()


BAD_CREDIT_INPUT = [
    ({"line": "6000.01"}, "line", "less than or equal to 6000.00"),
    ({"line": "0"}, "line", "greater than or equal to 0.01"),
    ({"line": "12.345"}, "line", "no more than 2 decimal places"),
    ({"line": "abc"}, "line", "Enter a number."),
    ({"line": ""}, "__all__", "Enter the amount to credit on at least one line."),
    ({"mode": "whole", "line": "10.00"}, "__all__", "not both"),
    ({"reason": ""}, "reason", "This field is required."),
    ({"mode": "everything"}, "mode", "Select a valid choice."),
    ({"token": "x"}, "token", "stale or was tampered with"),
]


def test_bad_credit_note_input_changes_nothing(client, manager, month):
    as_user(client, manager)
    line = month.issued.lines.get()
    for post, field, message in BAD_CREDIT_INPUT:
        data = {
            "mode": post.get("mode", "lines"),
            f"line_{line.pk}": post.get("line", "100.00"),
            "reason": post.get("reason", "Goodwill"),
            "token": post.get("token", uuid.uuid4().hex),
        }
        response = client.post(invoice_url(month.issued, "credit"), data)
        assert response.status_code == 200, post
        errors = form_errors(response)
        key = f"line_{line.pk}" if field == "line" else field
        assert any(message in text for text in errors.get(key, [])), (post, errors)
    assert not CreditNote.objects.exists()
    assert ledger_balance(customer=month.alpha) == Decimal("14000.00")


def test_whole_invoice_credit_is_recorded_once_when_sent_twice(client, manager, month):
    as_user(client, manager)
    url = invoice_url(month.issued, "credit")
    data = {"mode": "whole", "reason": "Billed by mistake", "token": uuid.uuid4().hex}
    assert post_confirmed(client, url, data).status_code == 302
    second = post_confirmed(client, url, data)
    # The invoice is fully credited now: the form says so, and nothing is credited twice.
    assert CreditNote.objects.count() == 1
    assert CreditNote.objects.get().total.amount == Decimal("6000.00")
    month.issued.refresh_from_db()
    assert month.issued.status == "credited"
    assert ledger_balance(customer=month.alpha) == Decimal("20000.00")
    assert second.status_code == 302
    followed = client.get(second["Location"]).content.decode()
    assert "Credit note CN-2026-000001 was already issued from this page" in followed


def test_drafts_cannot_be_credited(client, manager, month):
    response = as_user(client, manager).get(invoice_url(month.held, "credit"), follow=True)
    assert "Only issued invoices can be credited." in response.content.decode()


def test_bulk_issue_and_rerate_actions(client, manager, month):
    as_user(client, manager)
    response = client.post(
        reverse(CHANGELIST),
        {"action": "rerate_selected", "_selected_action": [month.issued.pk]},
        follow=True,
    )
    assert "is issued: not re-rated" in response.content.decode()
    response = client.post(
        reverse(CHANGELIST),
        {"action": "issue_selected", "_selected_action": [month.held.pk, month.issued.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert "Issued 1 invoice." in body and "INV-2026-000001 is already issued." in body
    month.held.refresh_from_db()
    assert (month.held.status, month.held.number) == ("issued", "INV-2026-000002")
    # Issued "as it is": the held total, debited once.
    assert ledger_balance(customer=month.beta) == Decimal("1000.00")


def test_export_selection_as_csv(client, auditor, month):
    response = as_user(client, auditor).post(
        reverse(CHANGELIST),
        {"action": "export_csv", "_selected_action": [month.issued.pk, month.held.pk]},
    )
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:9] == [
        "number",
        "status",
        "period",
        "customer_external_id",
        "customer_name",
        "customer_tax_id",
        "total",
        "credited",
        "currency",
    ]
    by_customer = {row[3]: row for row in rows[1:]}
    assert len(rows) == 3
    assert by_customer["cust-alpha"][:3] == ["INV-2026-000001", "issued", "2026-10"]
    assert by_customer["cust-alpha"][6:10] == ["6000.00", "0.00", "CNY", "2026-11-02"]
    assert by_customer["cust-beta"][:3] == ["", "held", "2026-10"]
    assert by_customer["cust-beta"][6] == "9000.00"
    assert "high-volume" in by_customer["cust-beta"][10]


def test_pdf_download_one_and_many(client, auditor, month):
    as_user(client, auditor)
    single = client.get(invoice_url(month.issued, "pdf"))
    assert single["Content-Type"] == "application/pdf"
    assert single.content.startswith(b"%PDF")
    assert 'filename="INV-2026-000001.pdf"' in single["Content-Disposition"]
    many = client.post(
        reverse(CHANGELIST),
        {"action": "download_pdf", "_selected_action": [month.issued.pk, month.held.pk]},
    )
    assert many["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(many.content)).namelist()
    assert sorted(names) == ["INV-2026-000001.pdf", "draft-cust-beta-2026-10.pdf"]


def test_invoice_page_explains_each_line(client, clerk, month):
    body = as_user(client, clerk).get(invoice_url(month.issued)).content.decode()
    assert "peak DAU 8,000 on 2026-10-15" in body
    assert "¥6,000.00" in body
    assert 'data-testid="customer-balance">¥14,000.00' in body


def test_invoice_issue_refusal_is_a_message(client, manager, month):
    as_user(client, manager)
    response = client.post(invoice_url(month.issued, "issue"), follow=True)
    assert "already issued" in response.content.decode()
    assert Invoice.objects.filter(status="issued").count() == 1
    assert client.get(invoice_url(month.issued, "issue")).status_code == 405


def test_invoice_and_credit_note_pages_show_net_vat_and_gross(client, auditor, manager, month):
    issued = month.issued
    # October's 6,000.00 at 6% VAT included: net 5,660.38 + VAT 339.62 (plans.rating.tax).
    assert (issued.net_total, issued.vat_total, issued.total.amount) == (
        Decimal("5660.38"),
        Decimal("339.62"),
        Decimal("6000.00"),
    )
    line = issued.lines.get()
    note = credit_note_create(
        invoice=issued,
        line_amounts={line.pk: Decimal("1060.00")},
        reason="goodwill",
        created_by=manager,
        idempotency_key="cn-vat-columns",
        now=NOW,
    )
    assert (note.net_total, note.vat_total) == (Decimal("1000.00"), Decimal("60.00"))
    as_user(client, auditor)
    listed = client.get(reverse(CHANGELIST) + "?status__exact=partially_credited")
    body = listed.content.decode()
    for text in ("column-net_display", "column-vat_display", "¥5,660.38", "¥339.62", "¥6,000.00"):
        assert text in body, text
    page = client.get(invoice_url(issued)).content.decode()
    assert 'data-testid="invoice-net">¥5,660.38<' in page
    assert 'data-testid="invoice-vat">¥339.62<' in page
    assert "VAT (6%)" in page or "VAT (6.00%)" in page
    notes = client.get(reverse("admin:invoices_creditnote_changelist")).content.decode()
    assert "¥1,000.00" in notes and "¥60.00" in notes and "¥1,060.00" in notes
    note_page = client.get(reverse("admin:invoices_creditnote_change", args=[note.pk]))
    assert "¥1,000.00" in note_page.content.decode() and "¥60.00" in note_page.content.decode()
    rows = list(
        csv.reader(
            io.StringIO(
                client.post(
                    reverse(CHANGELIST), {"action": "export_csv", "_selected_action": [issued.pk]}
                ).content.decode("utf-8-sig")
            )
        )
    )
    assert rows[0][-2:] == ["net", "vat"]
    assert rows[1][-2:] == ["5660.38", "339.62"]

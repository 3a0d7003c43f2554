"""Finance uploads bank statements in the admin; bad files are a form error, unmatched lines
are assigned (after the confirmation step) or marked not ours."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import BankStatement, BankStatementLine, LedgerEntry
from accounts.selectors import ledger_balance
from tests.admin.conftest import as_user, form_errors, post_confirmed
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
FILES = Path(__file__).parent.parent / "accounts" / "bank_files"
ACCOUNT = "1001200230034004"
UPLOAD = "admin:accounts_bankstatement_upload"


@pytest.fixture(autouse=True)
def _bank_settings(settings):
    settings.BILLING_BANK_ACCOUNT = ACCOUNT
    settings.BILLING_BANK_OWN_ACCOUNTS = [ACCOUNT]


def upload(client, name: str, content: bytes, format: str = "csv"):
    return client.post(
        reverse(UPLOAD), {"file": SimpleUploadedFile(name, content), "format": format}
    )


def test_upload_reconciles_and_sends_finance_to_the_queue(client, clerk):
    wantan = CustomerFactory(transfer_reference="IMWANTAN9X")
    as_user(client, clerk)
    response = upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    assert response.status_code == 302
    assert response["Location"].endswith("?status__exact=unmatched")
    assert ledger_balance(customer=wantan) == Decimal("5000.00")
    queue = client.get(response["Location"])
    assert queue.status_code == 200
    page = queue.content.decode()
    assert "张三" in page and "Assign to a customer" in page


@pytest.mark.parametrize(
    "name, content, format",
    [
        ("empty.csv", b"", "csv"),
        ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "csv"),
        ("wrong.csv", b"Date,Amount\n2026-11-02,1\n", "csv"),
        ("statement.mt940", b"not a statement", "mt940"),
        ("cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes(), "mt940"),
    ],
)
def test_a_bad_file_is_a_form_error_and_stores_nothing(client, clerk, name, content, format):
    as_user(client, clerk)
    response = upload(client, name, content, format)
    assert response.status_code == 200
    [message] = form_errors(response)["file"]
    assert message.startswith("This file cannot be read") or "empty" in message
    assert not BankStatement.objects.exists()
    assert not BankStatementLine.objects.exists()


def test_a_negative_credit_is_a_row_numbered_form_error_and_stores_nothing(client, clerk):
    wantan = CustomerFactory(transfer_reference="IMWANTAN9X")
    as_user(client, clerk)
    content = (
        "交易日期,交易流水号,借方金额,贷方金额,摘要\n"
        "2026-11-02,T1,,5000.00,IMWANTAN9X\n"
        "2026-11-03,T2,-300.00,,IMWANTAN9X\n"
    ).encode()
    response = upload(client, "cmb.csv", content)
    assert response.status_code == 200
    assert form_errors(response)["file"] == [
        "This file cannot be read: row 3: the 借方金额 column holds a negative amount "
        "('-300.00'); credit and debit amounts are written without a sign"
    ]
    assert not BankStatement.objects.exists()
    assert not BankStatementLine.objects.exists()
    assert ledger_balance(customer=wantan) == Decimal("0.00")


def test_an_auditor_may_not_upload(client, auditor):
    as_user(client, auditor)
    response = upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    assert response.status_code == 403
    assert not BankStatement.objects.exists()


def test_assigning_an_unmatched_line_writes_nothing_until_confirmed(client, clerk):
    acme = CustomerFactory(name="Acme Chat Ltd", external_id="acme")
    as_user(client, clerk)
    upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    line = BankStatementLine.objects.get(bank_transaction_id="CMB20261107000006")
    url = reverse("admin:accounts_bankstatementline_assign", args=[line.pk])

    form = client.get(url)
    assert "acme" in form.content.decode()  # suggested by the payer's name
    preview = client.post(url, {"customer": "acme"})
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Confirm: deposit of ¥600.00 for Acme Chat Ltd" in body
    assert not LedgerEntry.objects.filter(customer=acme).exists()

    done = post_confirmed(client, url, {"customer": "acme"})
    assert done.status_code == 302
    line.refresh_from_db()
    assert (line.status, line.customer, line.decided_by) == ("matched", acme, clerk)
    entry = line.deposit
    assert (entry.amount.amount, entry.method, entry.reference, entry.created_by) == (
        Decimal("600.00"),
        "bank_transfer",
        "CMB20261107000006",
        clerk,
    )
    # Confirming again (a double click) deposits nothing more.
    post_confirmed(client, url, {"customer": "acme"})
    assert LedgerEntry.objects.filter(customer=acme).count() == 1


def test_assigning_to_an_unknown_customer_is_a_form_error(client, clerk):
    as_user(client, clerk)
    upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    line = BankStatementLine.objects.get(bank_transaction_id="CMB20261105000004")
    response = client.post(
        reverse("admin:accounts_bankstatementline_assign", args=[line.pk]), {"customer": "nobody"}
    )
    assert response.status_code == 200
    assert form_errors(response) == {
        "customer": ["No customer has this external id or transfer reference."]
    }


def test_marking_a_line_not_ours(client, clerk):
    as_user(client, clerk)
    upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    line = BankStatementLine.objects.get(bank_transaction_id="CMB20261105000004")
    response = client.post(
        reverse("admin:accounts_bankstatementline_not_ours", args=[line.pk]),
        {"note": "private transfer, returned"},
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert (line.status, line.note, line.decided_by) == (
        "not_ours",
        "private transfer, returned",
        clerk,
    )
    assert not LedgerEntry.objects.exists()


def test_csv_without_a_configured_account_says_it_is_the_setup_not_the_file(
    client, clerk, settings
):
    """`make run` sets no bank account: a good CSV was refused as "This file cannot be read",
    so finance looked for a fault in the bank's file. The form says what is missing instead."""
    settings.BILLING_BANK_ACCOUNT = ""
    as_user(client, clerk)
    response = upload(client, "cmb.csv", (FILES / "cmb_2026-11.csv").read_bytes())
    assert response.status_code == 200
    assert form_errors(response) == {
        "__all__": [
            "CSV statements cannot be read yet: the server does not know which account they "
            "are of. Ask your administrator to set BILLING_BANK_ACCOUNT (or "
            "BILLING_ISSUER_BANK_ACCOUNT). MT940 files name their account and can be uploaded."
        ]
    }
    assert not BankStatement.objects.exists()
    assert not BankStatementLine.objects.exists()

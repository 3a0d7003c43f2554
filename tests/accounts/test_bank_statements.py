"""Bank transfers, reconciled: the transfer reference, reading the bank's CSV export and MT940,
matching credits to customers, and each bank transaction deposited exactly once."""

import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import (
    Application,
    BankStatement,
    BankStatementLine,
    Customer,
    CustomerEvent,
    LedgerEntry,
)
from accounts.payments.bank_reconciliation import (
    BankLineError,
    bank_line_deposit,
    bank_line_not_ours,
    bank_line_suggestions,
    statement_upload,
)
from accounts.payments.bank_statements import (
    StatementError,
    StatementLine,
    csv_columns,
    line_dedupe_key,
    parse_csv,
    parse_mt940,
)
from accounts.selectors import ledger_balance
from accounts.services import ledger_record
from accounts.transfer_reference import (
    ALPHABET,
    transfer_reference_new,
    transfer_reference_valid,
    transfer_references_in,
)
from billingsite.clock import Period, billing_date
from invoices.exports.reports import journal_entries
from tests.factories import NOW, ApplicationFactory, CustomerFactory, deposit

FILES = Path(__file__).parent / "bank_files"
ACCOUNT = "1001200230034004"
# Valid references (Luhn mod 32 check characters) quoted by the fixture files.
WANTAN, ECHO, ACME = "IMWANTAN9X", "IMECH0CATY", "IMACME007V"


def read(name: str) -> bytes:
    return (FILES / name).read_bytes()


@pytest.fixture(autouse=True)
def _bank_settings(settings):
    settings.BILLING_BANK_ACCOUNT = ACCOUNT
    settings.BILLING_BANK_OWN_ACCOUNTS = [ACCOUNT]


@pytest.fixture
def customers(db):
    return {
        "wantan": CustomerFactory(name="上海万坦科技有限公司", transfer_reference=WANTAN),
        "echo": CustomerFactory(name="回声网络科技有限公司", transfer_reference=ECHO),
        "acme": CustomerFactory(name="Acme Chat Ltd", transfer_reference=ACME),
    }


# --- the transfer reference ---------------------------------------------------------------


def test_every_customer_gets_a_valid_unique_reference(db):
    first, second = CustomerFactory(), CustomerFactory()
    assert first.transfer_reference != second.transfer_reference
    for customer in (first, second):
        customer.refresh_from_db()
        assert len(customer.transfer_reference) == 10
        assert customer.transfer_reference.startswith("IM")
        assert transfer_reference_valid(customer.transfer_reference)


def test_the_database_refuses_a_second_customer_with_the_same_reference(db):
    CustomerFactory(transfer_reference=WANTAN)
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerFactory(transfer_reference=WANTAN)


@pytest.mark.parametrize(
    "text, found",
    [
        ("IMWANTAN9X", [WANTAN]),
        ("充值 imwantan9x", [WANTAN]),
        ("货款 IM-ECH0-CATY", [ECHO]),
        ("im echo caty", []),  # O is not in the alphabet: not read as 0
        ("CLAIMWANTAN9X", [WANTAN]),  # inside a word
        ("IMWANTAN9Y", []),  # wrong check character
        ("IMWANTNA9X", []),  # two neighbours swapped
        ("IMWANTAN9X and IMECH0CATY", [WANTAN, ECHO]),
        ("", []),
    ],
)
def test_references_are_found_in_remarks_tolerantly_and_checked(text, found):
    assert transfer_references_in(text) == found


@given(
    position=st.integers(min_value=2, max_value=9),
    replacement=st.sampled_from(ALPHABET),
)
def test_the_check_character_catches_every_single_typo(position, replacement):
    reference = transfer_reference_new()
    assert transfer_reference_valid(reference)
    typo = reference[:position] + replacement + reference[position + 1 :]
    assert transfer_reference_valid(typo) == (typo == reference)


@given(position=st.integers(min_value=2, max_value=8))
def test_the_check_character_catches_swapped_neighbours(position):
    reference = transfer_reference_new()
    swapped = (
        reference[:position]
        + reference[position + 1]
        + reference[position]
        + reference[position + 2 :]
    )
    # Luhn mod N misses one pair, the first and last characters of the alphabet (as Luhn's
    # 09 <-> 90): "0Z" <-> "Z0".
    missed = {reference[position], reference[position + 1]} == {"0", "Z"}
    assert transfer_reference_valid(swapped) == (swapped == reference or missed)


# --- reading statements ---------------------------------------------------------------------


def test_csv_export_is_read_with_the_configured_columns():
    statement = parse_csv(read("cmb_2026-11.csv"))
    assert statement.account == ACCOUNT
    assert [
        (line.booked_on.day, line.credit, line.amount, line.transaction_id)
        for line in statement.lines
    ] == [
        (2, True, Decimal("5000.00"), "CMB20261102000001"),
        (3, False, Decimal("1200.00"), "CMB20261103000002"),
        (4, True, Decimal("3000.00"), "CMB20261104000003"),
        (5, True, Decimal("800.00"), "CMB20261105000004"),
        (6, True, Decimal("50000.00"), "CMB20261106000005"),
        (7, True, Decimal("600.00"), "CMB20261107000006"),
    ]
    first = statement.lines[0]
    assert (first.payer_name, first.payer_account, first.remark) == (
        "上海万坦科技有限公司",
        "6222020000001111",
        "充值 imwantan9x",
    )


def test_csv_in_gb18030_with_a_signed_amount_column(settings):
    text = (
        "Date,Ref,Amount,Counterparty,Counterparty account,Memo\n"
        "20261102,T1,1000.50,万坦,6222,IMWANTAN9X\n"
        "20261103,T2,-20.00,Bank,,fee\n"
    )
    statement = parse_csv(
        text.encode("gb18030"),
        columns=csv_columns(
            "date=Date,transaction_id=Ref,amount=Amount,payer_name=Counterparty,"
            "payer_account=Counterparty account,remark=Memo"
        ),
        date_format="%Y%m%d",
    )
    assert [(line.credit, line.amount, line.payer_name) for line in statement.lines] == [
        (True, Decimal("1000.50"), "万坦"),
        (False, Decimal("20.00"), "Bank"),
    ]


def test_mt940_is_read_with_payer_remark_and_bank_reference():
    statement = parse_mt940(read("statement_2026-11.mt940"))
    assert statement.account == ACCOUNT
    assert [
        (
            line.booked_on,
            line.credit,
            line.amount,
            line.transaction_id,
            line.payer_name,
            line.remark,
        )
        for line in statement.lines
    ] == [
        (
            dt.date(2026, 11, 10),
            True,
            Decimal("4000.00"),
            "MT20261110A1",
            "SHANGHAI WANTAN TECHNOLOGY CO LTD",
            "TOP UP IMWANTAN9X",
        ),
        (
            dt.date(2026, 11, 10),
            False,
            Decimal("350.00"),
            "MT20261110A2",
            "CHINA MERCHANTS BANK",
            "ACCOUNT FEE",
        ),
        (
            dt.date(2026, 11, 10),
            True,
            Decimal("1500.00"),
            "",
            "ECHO NETWORK",
            "IMECH0CATY NOVEMBER",
        ),
    ]


@pytest.mark.parametrize(
    "data, format, message",
    [
        (b"", "csv", "no header row"),
        (b"\x00\xff\xfe garbage \x81", "csv", "neither UTF-8 nor GB18030"),
        ("交易日期,贷方金额,借方金额\n2026-13-45,1,\n".encode(), "csv", "is not a date"),
        ("交易日期,贷方金额,借方金额\n2026-11-02,abc,\n".encode(), "csv", "is not an amount"),
        ("交易日期,贷方金额,借方金额\n2026-11-02,1.234,\n".encode(), "csv", "yuan and fen"),
        ("交易日期,贷方金额,借方金额\n2026-11-02,,\n".encode(), "csv", "no amount"),
        ("交易日期,贷方金额,借方金额\n".encode(), "csv", "no transactions"),
        # A sign in a direction column would reverse the direction: refused, row-numbered.
        (
            "交易日期,贷方金额,借方金额\n2026-11-02,100.00,\n2026-11-03,-100.00,\n".encode(),
            "csv",
            r"^row 3: the 贷方金额 column holds a negative amount \('-100.00'\)",
        ),
        (
            "交易日期,贷方金额,借方金额\n2026-11-02,,-50.00\n".encode(),
            "csv",
            r"^row 2: the 借方金额 column holds a negative amount",
        ),
        ('交易日期,贷方金额,借方金额\n2026-11-02,"-5,000.00",\n'.encode(), "csv", "negative"),
        ("交易日期,贷方金额,借方金额\n2026-11-02,+-5.00,\n".encode(), "csv", "not an amount"),
        # A decimal comma is not a grouping comma: "12,34" is refused, not read as 1,234.
        ('交易日期,贷方金额,借方金额\n2026-11-02,"12,34",\n'.encode(), "csv", "not an amount"),
        (b"Date,Amount\n2026-11-02,+-5.00\n", "signed", "row 2: '\\+-5.00' is not an amount"),
        (b"hello", "mt940", "not an MT940"),
        (b":20:X\n:61:garbage\n", "mt940", None),
    ],
)
def test_unreadable_files_raise_statement_error(data, format, message):
    signed = csv_columns("date=Date,amount=Amount")
    reader = {
        "csv": parse_csv,
        "signed": lambda data: parse_csv(data, columns=signed),
        "mt940": parse_mt940,
    }[format]
    with pytest.raises(StatementError, match=message):
        reader(data)


def test_a_zero_in_the_other_direction_column_is_no_amount_there():
    statement = parse_csv(
        "交易日期,贷方金额,借方金额\n2026-11-02,0.00,120.00\n2026-11-03,+80.00,0\n".encode()
    )
    assert [(line.credit, line.amount) for line in statement.lines] == [
        (False, Decimal("120.00")),
        (True, Decimal("80.00")),
    ]


MT940_MARKS = """:20:STMT20261110
:25:1001200230034004
:28C:00311/001
:60F:C261109CNY160700,00
:61:2611100110{mark}4000,00NTRFNONREF//MT1
:86:/NAME/SHANGHAI WANTAN TECHNOLOGY CO LTD/REMI/TOP UP IMWANTAN9X
:62F:C261110CNY165850,00
-
"""


@pytest.mark.parametrize(
    "mark, credit",
    [("C", True), ("D", False), ("RD", True), ("RC", False), ("c", True), ("d", False)],
)
def test_mt940_direction_is_its_mark_a_reversed_credit_is_money_out(mark, credit):
    """The mt940 library negates only an upper-case D unless told otherwise: a reversal of a
    credit (RC) or a lower-case d came back positive, i.e. as a deposit."""
    [line] = parse_mt940(MT940_MARKS.format(mark=mark).encode()).lines
    assert (line.credit, line.amount) == (credit, Decimal("4000.00"))


def test_mt940_zero_amount_is_refused():
    with pytest.raises(StatementError, match="^transaction 1: no amount$"):
        parse_mt940(MT940_MARKS.format(mark="C").replace("C4000,00", "C0,00").encode())


# --- reconciling ---------------------------------------------------------------------------


def test_upload_deposits_referenced_credits_and_queues_the_rest(customers):
    result = statement_upload(
        data=read("cmb_2026-11.csv"), file_name="cmb.csv", format="csv", uploaded_by=None, now=NOW
    )

    assert (result.new, result.seen_before, result.matched, result.unmatched) == (6, 0, 2, 2)
    statuses = dict(BankStatementLine.objects.values_list("bank_transaction_id", "status"))
    assert statuses == {
        "CMB20261102000001": "matched",
        "CMB20261103000002": "ignored",  # debit
        "CMB20261104000003": "matched",
        "CMB20261105000004": "unmatched",  # no reference
        "CMB20261106000005": "ignored",  # from our own account
        "CMB20261107000006": "unmatched",  # wrong check character: never another customer
    }
    assert ledger_balance(customer=customers["wantan"]) == Decimal("5000.00")
    assert ledger_balance(customer=customers["echo"]) == Decimal("3000.00")
    assert ledger_balance(customer=customers["acme"]) == Decimal("0.00")
    entry = LedgerEntry.objects.get(customer=customers["wantan"])
    assert (entry.kind, entry.method, entry.reference, entry.created_at) == (
        "deposit",
        "bank_transfer",
        "CMB20261102000001",
        NOW,
    )
    assert entry.idempotency_key == f"bank:{ACCOUNT}:CMB20261102000001"
    assert BankStatementLine.objects.get(deposit=entry).customer == customers["wantan"]
    # A receipt for each deposit, as for every deposit.
    assert CustomerEvent.objects.filter(kind="payment_received").count() == 2


def test_the_same_statement_uploaded_twice_deposits_nothing_twice(customers):
    for _ in range(2):
        result = statement_upload(
            data=read("cmb_2026-11.csv"),
            file_name="cmb.csv",
            format="csv",
            uploaded_by=None,
            now=NOW,
        )
    assert (result.new, result.seen_before, result.matched, result.unmatched) == (0, 6, 0, 2)
    assert BankStatement.objects.count() == 2
    assert BankStatementLine.objects.count() == 6
    assert LedgerEntry.objects.filter(kind="deposit").count() == 2
    assert ledger_balance(customer=customers["wantan"]) == Decimal("5000.00")


def test_overlapping_statements_deposit_only_what_is_new(customers):
    statement_upload(
        data=read("cmb_2026-11.csv"), file_name="a.csv", format="csv", uploaded_by=None, now=NOW
    )
    result = statement_upload(
        data=read("cmb_2026-11_overlap.csv"),
        file_name="b.csv",
        format="csv",
        uploaded_by=None,
        now=NOW,
    )
    assert (result.new, result.seen_before, result.matched, result.unmatched) == (1, 2, 1, 1)
    assert ledger_balance(customer=customers["wantan"]) == Decimal("7500.00")
    assert BankStatementLine.objects.count() == 7


def test_mt940_without_a_bank_id_is_deduplicated_by_its_content(customers):
    for _ in range(2):
        statement_upload(
            data=read("statement_2026-11.mt940"),
            file_name="s.mt940",
            format="mt940",
            uploaded_by=None,
            now=NOW,
        )
    assert ledger_balance(customer=customers["wantan"]) == Decimal("4000.00")
    assert ledger_balance(customer=customers["echo"]) == Decimal("1500.00")
    hashed = BankStatementLine.objects.get(customer=customers["echo"])
    assert hashed.bank_transaction_id == ""
    assert hashed.dedupe_key.startswith(f"{ACCOUNT}:h:")
    assert hashed.deposit.reference == "2026-11-10 IMECH0CATY NOVEMBER"
    assert BankStatementLine.objects.filter(status="ignored", direction="debit").count() == 1


def test_an_interrupted_upload_is_matched_by_the_next_upload_of_the_file(customers):
    # An upload stored this line and died before matching it: it waits with its reference.
    statement = BankStatement.objects.create(
        file_name="b.csv", format="csv", account=ACCOUNT, sha256="-", uploaded_at=NOW
    )
    BankStatementLine.objects.create(
        statement=statement,
        bank_transaction_id="CMB20261109000007",
        dedupe_key=f"{ACCOUNT}:CMB20261109000007",
        direction="credit",
        amount=Decimal("2500.00"),
        booked_on=dt.date(2026, 11, 9),
        remark="IMWANTAN9X 12月",
        status="unmatched",
    )
    result = statement_upload(
        data=read("cmb_2026-11_overlap.csv"),
        file_name="b.csv",
        format="csv",
        uploaded_by=None,
        now=NOW,
    )
    assert (result.new, result.seen_before, result.matched, result.unmatched) == (2, 1, 1, 1)
    assert ledger_balance(customer=customers["wantan"]) == Decimal("2500.00")


def test_a_line_deposit_is_idempotent_and_reactivates_a_suspended_customer(customers, price_book):
    customer = customers["acme"]
    ApplicationFactory(customer=customer)
    ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=Decimal("-500.00"),
        reason="test arrears",
        idempotency_key="arrears",
        now=NOW,
    )
    Customer.objects.filter(pk=customer.pk).update(suspended_at=NOW)
    Application.objects.filter(customer=customer).update(status="suspended")
    statement_upload(
        data=read("cmb_2026-11.csv"), file_name="a.csv", format="csv", uploaded_by=None, now=NOW
    )
    line = BankStatementLine.objects.get(bank_transaction_id="CMB20261107000006")

    line, created = bank_line_deposit(line=line, customer=customer, now=NOW)
    again, created_again = bank_line_deposit(line=line, customer=customer, now=NOW)

    assert (created, created_again) == (True, False)
    assert again.deposit == line.deposit
    assert ledger_balance(customer=customer) == Decimal("100.00")
    customer.refresh_from_db()
    assert customer.suspended_at is None and customer.arrears_since is None
    assert set(customer.applications.values_list("status", flat=True)) == {"active"}
    with pytest.raises(BankLineError, match="another customer"):
        bank_line_deposit(line=line, customer=customers["echo"], now=NOW)


def test_not_ours_writes_no_deposit_and_cannot_be_deposited_after(customers):
    statement_upload(
        data=read("cmb_2026-11.csv"), file_name="a.csv", format="csv", uploaded_by=None, now=NOW
    )
    line = BankStatementLine.objects.get(bank_transaction_id="CMB20261105000004")
    line = bank_line_not_ours(line=line, decided_by=None, note="a supplier's refund", now=NOW)
    assert (line.status, line.note) == ("not_ours", "a supplier's refund")
    with pytest.raises(BankLineError):
        bank_line_deposit(line=line, customer=customers["acme"], now=NOW)
    matched = BankStatementLine.objects.get(bank_transaction_id="CMB20261102000001")
    with pytest.raises(BankLineError):
        bank_line_not_ours(line=matched, decided_by=None, note="x", now=NOW)
    assert LedgerEntry.objects.filter(kind="deposit").count() == 2


def test_suggestions_by_payer_name_account_and_amount(customers):
    deposit(customers["acme"], "1000.00")
    ledger_record(
        customer=customers["acme"],
        kind=LedgerEntry.Kind.INVOICE_DEBIT,
        amount=Decimal("-800.00"),
        idempotency_key="debit",
        reference="INV-2026-000001",
        now=NOW,
    )
    statement_upload(
        data=read("cmb_2026-11.csv"), file_name="a.csv", format="csv", uploaded_by=None, now=NOW
    )
    by_name = BankStatementLine.objects.get(bank_transaction_id="CMB20261107000006")
    assert [s.customer for s in bank_line_suggestions(line=by_name)][:1] == [customers["acme"]]
    by_amount = BankStatementLine.objects.get(bank_transaction_id="CMB20261105000004")
    assert [(s.customer, s.why) for s in bank_line_suggestions(line=by_amount)] == [
        (customers["acme"], "the amount is what an invoice of theirs debited")
    ]


def test_dedupe_key_without_an_id_hashes_what_the_bank_says():
    line = StatementLine(
        booked_on=dt.date(2026, 11, 2),
        amount=Decimal("1.00"),
        credit=True,
        transaction_id="",
        payer_name="A",
        payer_account="1",
        remark="r",
    )
    other = StatementLine(**{**line.__dict__, "remark": "s"})
    assert line_dedupe_key(account="X", line=line) != line_dedupe_key(account="X", line=other)
    assert line_dedupe_key(account="X", line=line) == line_dedupe_key(account="X", line=line)


def test_the_journal_posts_a_statement_deposit_to_the_bank_with_its_bank_reference(customers):
    statement_upload(
        data=read("cmb_2026-11.csv"), file_name="a.csv", format="csv", uploaded_by=None, now=NOW
    )
    rows = [
        row
        for row in journal_entries(period=Period.containing(billing_date(NOW)))
        if row.payment_reference == "CMB20261102000001"
    ]
    assert [(row.account.code, row.debit, row.payment_method) for row in rows if row.debit] == [
        ("1100", Decimal("5000.00"), "bank_transfer")
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_statement_uploaded_twice_at_once_deposits_once(settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL")
    wantan = CustomerFactory(transfer_reference=WANTAN)
    start = threading.Barrier(2)
    errors = []

    def upload():
        try:
            start.wait()
            statement_upload(
                data=read("cmb_2026-11.csv"),
                file_name="cmb.csv",
                format="csv",
                uploaded_by=None,
                now=NOW,
            )
        except Exception as error:  # the test reports it below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert BankStatementLine.objects.count() == 6
    assert LedgerEntry.objects.filter(kind="deposit").count() == 1
    assert ledger_balance(customer=wantan) == Decimal("5000.00")

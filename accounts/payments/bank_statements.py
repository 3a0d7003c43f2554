"""Reading bank statements: the issuer's bank's CSV export (columns named by settings) and
MT940 (the `mt-940` library). Pure parsing: files in, `StatementLine`s out, nothing written;
`accounts.payments.bank_reconciliation` stores and matches them.

CSV: the columns are named by BILLING_BANK_CSV_COLUMNS (`field=Header` pairs): `date`,
`transaction_id`, either `amount` (signed: negative is a debit) or `credit` and `debit` (two
columns, one of them filled, without a sign: a negative one is refused), `payer_name`, `payer_account`, `remark`, optionally `currency`.
Lines before the header row (banks print the account and the period there) are skipped, as
are total rows after the data. UTF-8 (with or without BOM) or GB18030 (GBK, what Chinese
banks' exports usually are).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from decimal import Decimal

import mt940
from django.conf import settings

from billingsite.money import AMOUNT_LIMIT, CURRENCY, parse_amount, round_money

CSV_FIELDS = {
    "date",
    "transaction_id",
    "amount",
    "credit",
    "debit",
    "payer_name",
    "payer_account",
    "remark",
    "currency",
}
# The :61: debit/credit marks: a reversal of a debit (RD) brings money back in, a reversal of
# a credit (RC) takes it out.
MT940_CREDIT_MARKS = frozenset({"C", "RD"})
MT940_DEBIT_MARKS = frozenset({"D", "RC"})
# Files larger than this are not statements of one account (the admin refuses them).
MAX_STATEMENT_BYTES = 10 * 1024 * 1024


class StatementError(ValueError):
    """The file is not a statement this deployment can read; nothing was stored."""


class StatementSetupError(StatementError):
    """The deployment cannot read CSV statements at all (no bank account configured): nothing
    is wrong with the file; nothing was stored."""


@dataclass(frozen=True)
class StatementLine:
    booked_on: dt.date
    # Positive; `credit` says the direction.
    amount: Decimal
    credit: bool
    transaction_id: str
    payer_name: str
    payer_account: str
    remark: str


@dataclass(frozen=True)
class ParsedStatement:
    # The issuer's account the statement is of.
    account: str
    lines: list[StatementLine]


def line_dedupe_key(*, account: str, line: StatementLine) -> str:
    """One key per bank transaction: the account and the bank's transaction id, or, when the
    bank gives none, a hash of what the bank says about it (date, direction, amount, payer,
    remark). Two identical transfers on one day without ids are one line: the second waits
    until a statement with ids (or finance) tells them apart."""
    if line.transaction_id:
        return f"{account}:{line.transaction_id}"[:200]
    facts = "|".join(
        [
            line.booked_on.isoformat(),
            "C" if line.credit else "D",
            f"{line.amount:.2f}",
            line.payer_name,
            line.payer_account,
            line.remark,
        ]
    )
    return f"{account}:h:{hashlib.sha256(facts.encode()).hexdigest()[:40]}"


def _text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        # A NUL is in no bank's text export (UTF-16 has one in every character); kept, it
        # reached the database, which refuses it in text (a server error, not a form error).
        if "\x00" in text:
            raise StatementError("the file holds NUL characters: not a text export (UTF-16?)")
        return text
    raise StatementError("the file is neither UTF-8 nor GB18030 text")


def _amount(raw: str) -> Decimal | None:
    """A cell's amount as the bank wrote it (grouping commas in their places, a yuan sign, a
    leading + or -), None for an empty cell."""
    text = (raw or "").strip().replace("¥", "").replace("￥", "").strip()
    if not text or text in {"-", "--"}:
        return None
    unsigned = text.removeprefix("+")
    try:
        if unsigned != text and unsigned[:1] in {"+", "-"}:
            raise ValueError("two signs")
        # Commas are checked, not dropped: "12,34" is a decimal comma, not 1,234.
        value = parse_amount(unsigned)
    except ValueError as error:  # also exponents, NaN, other digits, 1e12 and above
        raise StatementError(f"{raw[:40]!r} is not an amount") from error
    if round_money(value) != value:
        raise StatementError(f"{raw!r} is not an amount in yuan and fen")
    return value


def _unsigned(raw: str, *, column: str) -> Decimal | None:
    """A credit or debit column's amount: the column says the direction, so a negative one is
    refused (read as it stands it would move money the other way: a debit deposited)."""
    value = _amount(raw)
    if value is not None and value < 0:
        raise StatementError(
            f"the {column} column holds a negative amount ({raw[:40]!r}); credit and debit "
            "amounts are written without a sign"
        )
    return value


def csv_columns(spec: str | None = None) -> dict[str, str]:
    """The configured mapping field -> header (BILLING_BANK_CSV_COLUMNS)."""
    columns: dict[str, str] = {}
    for pair in (spec if spec is not None else settings.BILLING_BANK_CSV_COLUMNS).split(","):
        if not pair.strip():
            continue
        field, _, header = pair.partition("=")
        field, header = field.strip(), header.strip()
        if field not in CSV_FIELDS or not header:
            raise StatementError(f"BILLING_BANK_CSV_COLUMNS: {pair!r} is not field=Header")
        columns[field] = header
    if "date" not in columns or not (
        "amount" in columns or ("credit" in columns and "debit" in columns)
    ):
        raise StatementError("BILLING_BANK_CSV_COLUMNS needs date and amount (or credit and debit)")
    return columns


def parse_csv(
    data: bytes,
    *,
    account: str | None = None,
    columns: dict[str, str] | None = None,
    date_format: str | None = None,
) -> ParsedStatement:
    """A CSV export in the configured format. Raises StatementError for a file that is not."""
    columns = columns or csv_columns()
    date_format = date_format or settings.BILLING_BANK_CSV_DATE_FORMAT
    account = (account if account is not None else settings.BILLING_BANK_ACCOUNT).replace(" ", "")
    if not account:
        raise StatementSetupError(
            "CSV statements cannot be read yet: the server does not know which account they "
            "are of. Ask your administrator to set BILLING_BANK_ACCOUNT (or "
            "BILLING_ISSUER_BANK_ACCOUNT). MT940 files name their account and can be uploaded."
        )
    try:
        rows = list(csv.reader(io.StringIO(_text(data))))
    except csv.Error as error:  # e.g. a field above the csv module's limit (128 KiB)
        raise StatementError(f"the CSV file could not be read: {error}") from error
    required = {columns["date"]} | (
        {columns["amount"]} if "amount" in columns else {columns["credit"], columns["debit"]}
    )
    header_at = next(
        (n for n, row in enumerate(rows) if required <= {cell.strip() for cell in row}), None
    )
    if header_at is None:
        raise StatementError(
            "no header row with the columns " + ", ".join(sorted(required)) + " was found"
        )
    header = [cell.strip() for cell in rows[header_at]]
    index = {field: header.index(name) for field, name in columns.items() if name in header}
    lines = []
    for number, row in enumerate(rows[header_at + 1 :], start=header_at + 2):

        def cell(field: str, row=row) -> str:
            position = index.get(field)
            return row[position].strip() if position is not None and position < len(row) else ""

        if not any(value.strip() for value in row):
            continue
        raw_date = cell("date")
        try:
            booked_on = dt.datetime.strptime(raw_date, date_format).date()
        except ValueError:
            # A summary row ("合计", "Total") ends the data; anything else is an error.
            if re.search(r"合计|总计|total", " ".join(row), re.IGNORECASE):
                break
            raise StatementError(
                f"row {number}: {raw_date!r} is not a date ({date_format})"
            ) from None
        if cell("currency") and cell("currency").upper() not in {CURRENCY, "RMB", "人民币"}:
            raise StatementError(f"row {number}: only CNY statements can be read")
        try:
            if "amount" in index:
                signed = _amount(cell("amount"))
            else:
                credit = _unsigned(cell("credit"), column=columns["credit"])
                debit = _unsigned(cell("debit"), column=columns["debit"])
                if credit and debit:
                    raise StatementError("both credit and debit are filled")
                signed = credit if credit else (-debit if debit else None)
        except StatementError as error:
            raise StatementError(f"row {number}: {error}") from None
        if not signed:
            raise StatementError(f"row {number}: no amount")
        lines.append(
            StatementLine(
                booked_on=booked_on,
                amount=abs(signed),
                credit=signed > 0,
                transaction_id=cell("transaction_id")[:100],
                payer_name=cell("payer_name")[:200],
                payer_account=cell("payer_account").replace(" ", "")[:64],
                remark=cell("remark")[:500],
            )
        )
    if not lines:
        raise StatementError("the statement has no transactions")
    return ParsedStatement(account=account[:64], lines=lines)


# Structured :86: fields as many banks write them (SWIFT /NAME/, /REMI/ ... and the German
# ?32/?20 subfields are the common ones; anything else is kept as the remark).
_TAG = re.compile(r"/(NAME|REMI|ACCT|ORDP|IBAN)/([^/]*)")


def _details(text: str) -> dict[str, str]:
    return {tag: value.strip() for tag, value in _TAG.findall(text)}


def parse_mt940(data: bytes) -> ParsedStatement:
    """An MT940 file (one account; several statements of it may follow each other)."""
    text = _text(data)
    if ":20:" not in text or ":61:" not in text:
        raise StatementError("not an MT940 statement (no :20: and :61: fields)")
    transactions = mt940.models.Transactions()
    try:
        transactions.parse(text)
    except Exception as error:  # the library raises what its regular expressions meet
        raise StatementError(f"the MT940 file could not be read: {error}") from error
    account = str(transactions.data.get("account_identification") or "").replace(" ", "")
    if not account:
        raise StatementError("the MT940 file names no account (:25:)")
    lines = []
    for position, transaction in enumerate(transactions, start=1):
        data_ = transaction.data
        amount = data_.get("amount")
        if amount is None or data_.get("date") is None:
            continue
        currency = str(getattr(amount, "currency", "") or data_.get("currency") or CURRENCY)
        if currency.upper() not in {CURRENCY, "RMB"}:
            raise StatementError("only CNY statements can be read")
        value = abs(Decimal(amount.amount))
        if not value.is_finite() or value >= AMOUNT_LIMIT or round_money(value) != value:
            raise StatementError(f"{str(amount.amount)[:40]!r} is not an amount in yuan and fen")
        # The direction is the :61: mark, read here: the library signs only an upper-case D
        # by default, so a reversal of a credit (RC, money going out) or a lower-case d would
        # have come back as a credit, i.e. a deposit.
        mark = str(data_.get("status") or "").upper()
        if mark not in MT940_CREDIT_MARKS | MT940_DEBIT_MARKS:
            raise StatementError(
                f"transaction {position}: {mark[:4]!r} is not a debit/credit mark (C, D, RC, RD)"
            )
        if not value:
            raise StatementError(f"transaction {position}: no amount")
        raw_details = " ".join(
            str(data_.get(key) or "") for key in ("transaction_details", "extra_details")
        )
        details = " ".join(raw_details.split())
        tags = _details(details)
        reference = str(data_.get("bank_reference") or "")
        if not reference:
            customer_reference = str(data_.get("customer_reference") or "")
            reference = "" if customer_reference.upper() == "NONREF" else customer_reference
        booked = data_["date"]
        lines.append(
            StatementLine(
                booked_on=dt.date(booked.year, booked.month, booked.day),
                amount=abs(value),
                credit=mark in MT940_CREDIT_MARKS,
                transaction_id=reference[:100],
                payer_name=(tags.get("NAME") or tags.get("ORDP") or "")[:200],
                payer_account=(tags.get("ACCT") or tags.get("IBAN") or "").replace(" ", "")[:64],
                remark=(tags.get("REMI") or details)[:500],
            )
        )
    if not lines:
        raise StatementError("the statement has no transactions")
    return ParsedStatement(account=account[:64], lines=lines)


def statement_parse(*, data: bytes, format: str) -> ParsedStatement:
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementError("the file is larger than 10 MB")
    if format == "mt940":
        return parse_mt940(data)
    if format == "csv":
        return parse_csv(data)
    raise StatementError(f"unknown statement format {format!r}")

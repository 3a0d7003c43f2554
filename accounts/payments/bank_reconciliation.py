"""Bank transfers, reconciled: a statement's credit lines become deposits, each exactly once.

- `statement_upload` stores the statement and each bank transaction once
  (`BankStatementLine.dedupe_key`, a unique constraint: a file uploaded twice or overlapping
  an earlier one adds only what is new), ignores debits and transfers from the issuer's own
  accounts, and matches credits by the transfer reference in their remark.
- `bank_line_deposit` is the one place a line becomes a deposit: the line row is locked, then
  `record_deposit` (method bank transfer) locks the customer; the deposit's idempotency key is
  the line's (`bank_deposit_key`), so a retried, repeated or concurrent match credits once.
- Lines without a (valid, single) reference wait as unmatched; finance assigns them to a
  customer (`bank_line_deposit` with `decided_by`, after the admin's confirmation step) or
  marks them not ours (`bank_line_not_ours`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from moneyed import Money

from accounts.models import BankStatement, BankStatementLine, Customer, LedgerEntry
from accounts.payments.bank_statements import (
    ParsedStatement,
    StatementLine,
    line_dedupe_key,
    statement_parse,
)
from accounts.services import record_deposit
from accounts.transfer_reference import transfer_references_in
from billingsite.money import CURRENCY

Status = BankStatementLine.Status


class BankLineError(ValueError):
    """A decision on a statement line was refused (already decided otherwise); nothing
    changed."""


def bank_deposit_key(*, dedupe_key: str) -> str:
    """The deposit's idempotency key: the bank transaction's own key."""
    return f"bank:{dedupe_key}"[:200]


@dataclass(frozen=True)
class StatementImport:
    statement: BankStatement
    # Transactions stored by this upload, and those earlier statements already held.
    new: int
    seen_before: int
    # Lines that became deposits now (this upload's, or earlier ones left waiting).
    matched: int
    # This file's credit lines waiting for finance.
    unmatched: int


def _initial_status(*, line: StatementLine, own_accounts: set[str]) -> tuple[str, str]:
    if not line.credit:
        return Status.IGNORED, "debit: money out"
    if line.payer_account and line.payer_account in own_accounts:
        return Status.IGNORED, "transfer from our own account"
    return Status.UNMATCHED, ""


def statement_upload(
    *, data: bytes, file_name: str, format: str, uploaded_by, now: dt.datetime
) -> StatementImport:
    """Read, store and reconcile a statement. Raises `StatementError` (nothing stored) for a
    file that cannot be read."""
    parsed: ParsedStatement = statement_parse(data=data, format=format)
    own_accounts = {*settings.BILLING_BANK_OWN_ACCOUNTS, parsed.account}
    keys: list[str] = []
    new = 0
    with transaction.atomic():
        statement = BankStatement.objects.create(
            file_name=file_name[:255],
            format=format,
            account=parsed.account,
            sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=uploaded_by,
            uploaded_at=now,
            lines_in_file=len(parsed.lines),
        )
        for line in parsed.lines:
            key = line_dedupe_key(account=parsed.account, line=line)
            if key in keys:
                continue
            keys.append(key)
            status, note = _initial_status(line=line, own_accounts=own_accounts)
            try:
                # A savepoint per line: a transaction an earlier (or concurrent) upload
                # stored is a unique violation here, and only that line is skipped.
                with transaction.atomic():
                    BankStatementLine.objects.create(
                        statement=statement,
                        bank_transaction_id=line.transaction_id,
                        dedupe_key=key,
                        direction=BankStatementLine.Direction.CREDIT
                        if line.credit
                        else BankStatementLine.Direction.DEBIT,
                        # (django-stubs types djmoney's MoneyField as its DecimalField base)
                        amount=Money(line.amount, CURRENCY),  # type: ignore[misc]
                        booked_on=line.booked_on,
                        payer_name=line.payer_name,
                        payer_account=line.payer_account,
                        remark=line.remark,
                        status=status,
                        note=note,
                    )
                new += 1
            except IntegrityError:
                pass
        statement.lines_seen_before = len(parsed.lines) - new
        statement.save(update_fields=["lines_seen_before"])
    # Every waiting line of this file, also one an interrupted earlier upload stored but did
    # not get to match: each in its own transaction, under its own locks.
    matched = 0
    waiting = BankStatementLine.objects.filter(dedupe_key__in=keys, status=Status.UNMATCHED)
    for waiting_line in waiting.order_by("id"):
        customer = reference_customer(remark=waiting_line.remark)
        if customer is not None:
            _line, created = bank_line_deposit(line=waiting_line, customer=customer, now=now)
            matched += int(created)
    unmatched = BankStatementLine.objects.filter(
        dedupe_key__in=keys, status=Status.UNMATCHED
    ).count()
    return StatementImport(
        statement=statement,
        new=new,
        seen_before=statement.lines_seen_before,
        matched=matched,
        unmatched=unmatched,
    )


def reference_customer(*, remark: str) -> Customer | None:
    """The one customer whose transfer reference the remark quotes (check character valid);
    None when it quotes none, or references of several customers (finance decides)."""
    references = transfer_references_in(remark)
    if not references:
        return None
    customers = list(Customer.objects.filter(transfer_reference__in=references)[:2])
    return customers[0] if len(customers) == 1 else None


def _deposit_reference(line: BankStatementLine) -> str:
    # The bank's own id of the transaction where it gives one: what finance finds it by.
    return (line.bank_transaction_id or f"{line.booked_on:%Y-%m-%d} {line.remark}").strip()[:200]


def bank_line_deposit(
    *, line: BankStatementLine, customer: Customer, now: dt.datetime, decided_by=None
) -> tuple[BankStatementLine, bool]:
    """Make a waiting credit line the customer's deposit (matched by reference, or assigned by
    finance: `decided_by`). Returns (line, created). Again for the same customer: the same
    deposit, nothing new; a line decided otherwise raises BankLineError."""
    with transaction.atomic():
        locked = BankStatementLine.objects.select_for_update().get(pk=line.pk)
        if locked.status == Status.MATCHED:
            if locked.customer_id != customer.pk:
                raise BankLineError("this line is already another customer's deposit")
            return locked, False
        if locked.status != Status.UNMATCHED:
            raise BankLineError(
                f"this line is {locked.get_status_display().lower()}: it cannot be deposited"
            )
        entry, created = record_deposit(
            customer=customer,
            amount=locked.amount.amount,
            reference=_deposit_reference(locked),
            idempotency_key=bank_deposit_key(dedupe_key=locked.dedupe_key),
            now=now,
            method=LedgerEntry.Method.BANK_TRANSFER,
            created_by=decided_by,
        )
        locked.status = Status.MATCHED
        locked.customer = customer
        locked.deposit = entry
        locked.decided_by = decided_by
        locked.decided_at = now
        locked.save(update_fields=["status", "customer", "deposit", "decided_by", "decided_at"])
    return locked, created


def bank_line_not_ours(
    *, line: BankStatementLine, decided_by, note: str, now: dt.datetime
) -> BankStatementLine:
    """Finance says a waiting credit is not a customer's payment (e.g. a refund from a
    supplier). Again: nothing changes; a matched line raises BankLineError."""
    with transaction.atomic():
        locked = BankStatementLine.objects.select_for_update().get(pk=line.pk)
        if locked.status == Status.NOT_OURS:
            return locked
        if locked.status != Status.UNMATCHED:
            raise BankLineError(
                f"this line is {locked.get_status_display().lower()}: only a waiting line "
                "can be marked not ours"
            )
        locked.status = Status.NOT_OURS
        locked.note = (note or "").strip()[:300]
        locked.decided_by = decided_by
        locked.decided_at = now
        locked.save(update_fields=["status", "note", "decided_by", "decided_at"])
    return locked


@dataclass(frozen=True)
class Suggestion:
    customer: Customer
    why: str


SUGGESTIONS = 5


def bank_line_suggestions(*, line: BankStatementLine) -> list[Suggestion]:
    """Customers the unmatched line is likely from, best first: the payer's account paid for
    them before; the payer's name is like theirs; the amount is what one of their invoices of
    the last three months debited."""
    found: dict[int, Suggestion] = {}

    def add(customers, why: str) -> None:
        for customer in customers:
            if customer.pk not in found and len(found) < SUGGESTIONS:
                found[customer.pk] = Suggestion(customer=customer, why=why)

    if line.payer_account:
        add(
            Customer.objects.filter(
                bank_statement_lines__payer_account=line.payer_account,
                bank_statement_lines__status=Status.MATCHED,
            ).distinct(),
            "this payer's account paid for them before",
        )
    if line.payer_name:
        names = dict(Customer.objects.values_list("name", "pk"))
        close = difflib.get_close_matches(line.payer_name, list(names), n=SUGGESTIONS, cutoff=0.6)
        contained = [
            name
            for name in names
            if line.payer_name.casefold() in name.casefold()
            or name.casefold() in line.payer_name.casefold()
        ]
        ordered = [names[name] for name in dict.fromkeys([*close, *contained])]
        by_pk = Customer.objects.in_bulk(ordered)
        add([by_pk[pk] for pk in ordered if pk in by_pk], "the payer's name is like theirs")
    add(
        Customer.objects.filter(
            ledger_entries__kind=LedgerEntry.Kind.INVOICE_DEBIT,
            ledger_entries__amount=-line.amount.amount,
            ledger_entries__created_at__gte=_months_ago(line.booked_on),
        ).distinct(),
        "the amount is what an invoice of theirs debited",
    )
    return list(found.values())


def _months_ago(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day - dt.timedelta(days=95), dt.time(), tzinfo=dt.UTC)

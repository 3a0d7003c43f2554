"""The month-end run: chunks, counts, per-account errors, retries, and no double billing
(twice, concurrently, after a crash half-way)."""

import datetime as dt
import socket
import threading
from decimal import Decimal
from io import StringIO

import django_celery_beat.schedulers as beat_schedulers
import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django_celery_beat.models import PeriodicTask
from freezegun import freeze_time
from kombu.exceptions import OperationalError

import accounts.events.records
import invoices.documents.issuing
import invoices.documents.issuing as issuing
import invoices.documents.services
import invoices.documents.services as services
import invoices.run.runs as runs
from accounts.models import Application, CustomerEvent, DailyUsage, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.usage import UsageBilledMonthError, usage_ingest
from billingsite.audit import current_system_actor
from billingsite.celery import app
from billingsite.celery import app as celery_app
from billingsite.clock import Period
from invoices.documents.services import InvoiceError, bill_customer
from invoices.models import BillingRun, BillingRunError, Invoice, InvoiceLine, NumberSequence
from invoices.run.runs import (
    billing_run_candidates,
    billing_run_chunk_process,
    billing_run_close_interrupted,
    billing_run_is_stalled,
    billing_run_resume,
    billing_run_retry_failed,
    billing_run_start,
    billing_runs_stalled,
)
from invoices.run.tasks import start_monthly_billing
from plans.models import AddOnChange
from tests.conftest import is_postgres, postgres_only
from tests.factories import ApplicationFactory, CustomerFactory, addon_change, plan_change, usage
from tests.invoices.test_invoices import (
    BILLING_MOMENT,
    OCTOBER,
    SHANGHAI,
    october_usage,
    premium_customer,
)


def build_accounts(count: int, *, balance: str = "20000.00") -> list:
    """`count` Premium customers (6,000.00 each for October)."""
    return [premium_customer(dau=5000, balance=balance)[0] for _ in range(count)]


def assert_billed_exactly_once(customers) -> None:
    """One issued invoice, one number, one debit per customer; numbers gapless."""
    for customer in customers:
        invoices = Invoice.objects.filter(customer=customer, period=OCTOBER.start)
        assert invoices.count() == 1
        assert invoices.get().status == Invoice.Status.ISSUED
        assert (
            LedgerEntry.objects.filter(
                customer=customer, kind=LedgerEntry.Kind.INVOICE_DEBIT
            ).count()
            == 1
        )
        assert ledger_balance(customer=customer) == Decimal("14000.00")
    numbers = sorted(
        Invoice.objects.filter(customer__in=customers).values_list("number", flat=True)
    )
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, len(customers) + 1)]
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == len(customers)
    assert CustomerEvent.objects.filter(kind=CustomerEvent.Kind.INVOICE_ISSUED).count() == len(
        customers
    )


def late_correction(app, *, now) -> None:
    """The platform corrects 17 October of `app` to 25,000 DAU."""

    row = {"app_key": app.app_key, "date": "2026-10-17", "dau": 25_000, "delivered_messages": 1000}
    usage_ingest(rows=[row], now=now)


def one_chunk_run(*, accounts: int) -> BillingRun:
    """A run for October started at the billing moment, its one chunk not processed yet."""
    return BillingRun.objects.create(
        period=OCTOBER.start,
        status=BillingRun.Status.RUNNING,
        created_at=BILLING_MOMENT,
        started_at=BILLING_MOMENT,
        accounts_total=accounts,
        chunks_total=1,
    )


@pytest.fixture
def small_chunks(settings):
    settings.BILLING_RUN_CHUNK_SIZE = 2


@pytest.mark.django_db
def test_run_bills_every_account_in_chunks_and_counts_outcomes(
    price_book, small_chunks, django_capture_on_commit_callbacks
):
    customers = build_accounts(4)
    held_customer, held_app = premium_customer(dau=5000)
    usage(held_app, dt.date(2026, 10, 29), 1, delivered_messages=2_500_000)
    free_customer = CustomerFactory()
    ApplicationFactory(customer=free_customer, plan="free", created_on=dt.date(2026, 9, 1))

    with django_capture_on_commit_callbacks(execute=True):
        run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)

    run.refresh_from_db()
    assert run.status == BillingRun.Status.FINISHED
    assert (run.accounts_total, run.chunks_total, run.chunks_done) == (5, 3, 3)
    assert (run.accounts_done, run.invoices_issued, run.invoices_held) == (5, 4, 1)
    assert (run.accounts_failed, run.accounts_skipped, run.accounts_already_billed) == (0, 0, 0)
    assert run.period == dt.date(2026, 10, 1)
    assert run.finished_at >= run.started_at == BILLING_MOMENT
    assert_billed_exactly_once(customers)
    assert Invoice.objects.get(customer=held_customer).status == Invoice.Status.HELD
    assert not Invoice.objects.filter(customer=free_customer).exists()
    assert set(Invoice.objects.values_list("billing_run", flat=True)) == {run.pk}


@pytest.mark.django_db
def test_a_run_for_a_month_under_way_is_refused(price_book):

    build_accounts(1)
    with pytest.raises(InvoiceError, match="2026-11 is not over yet"):
        billing_run_start(period=Period(2026, 11), now=BILLING_MOMENT)
    with pytest.raises(InvoiceError, match="2026-10 is not over yet"):
        billing_run_start(period=OCTOBER, now=dt.datetime(2026, 10, 31, 23, 59, tzinfo=SHANGHAI))
    assert not BillingRun.objects.exists()


@pytest.mark.django_db
def test_running_twice_bills_once(price_book, small_chunks, django_capture_on_commit_callbacks):
    customers = build_accounts(3)
    with django_capture_on_commit_callbacks(execute=True):
        first = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    with django_capture_on_commit_callbacks(execute=True):
        second = billing_run_start(period=OCTOBER, now=BILLING_MOMENT + dt.timedelta(hours=1))

    second.refresh_from_db()
    assert (second.accounts_total, second.status) == (0, BillingRun.Status.FINISHED)
    assert_billed_exactly_once(customers)
    # Even a chunk forced through again for the same accounts changes nothing.
    outcome = billing_run_chunk_process(
        run_id=second.pk,
        customer_ids=[c.pk for c in customers],
        period=OCTOBER,
        now=BILLING_MOMENT,
    )
    assert outcome == {"already_billed": 3}
    assert_billed_exactly_once(customers)
    first.refresh_from_db()
    assert first.invoices_issued == 3


class WorkerDied(BaseException):
    """Stands in for a killed worker: not an Exception, so nothing in the chunk catches it."""


@pytest.mark.django_db
@pytest.mark.parametrize("dies", ["inside_the_fourth_transaction", "after_the_fourth_commit"])
def test_crash_half_way_then_redelivery_bills_each_account_once(price_book, monkeypatch, dies):
    customers = build_accounts(5)
    ids = [c.pk for c in customers]
    run = one_chunk_run(accounts=5)

    real_bill_account, real_debit = runs.bill_account_rerating, issuing.debit_row
    calls = {"n": 0}

    def debit_dies_on_the_fourth(**kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise WorkerDied  # half-way through the 4th account's transaction
        return real_debit(**kwargs)

    def dies_after_the_fourth(**kwargs):
        outcome = real_bill_account(**kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            raise WorkerDied  # committed, but the chunk was never acknowledged
        return outcome

    if dies == "inside_the_fourth_transaction":
        monkeypatch.setattr(issuing, "debit_row", debit_dies_on_the_fourth)
        committed = 3
    else:
        monkeypatch.setattr(runs, "bill_account_rerating", dies_after_the_fourth)
        committed = 4
    with pytest.raises(WorkerDied):
        billing_run_chunk_process(
            run_id=run.pk, customer_ids=ids, period=OCTOBER, now=BILLING_MOMENT
        )
    monkeypatch.undo()

    assert Invoice.objects.count() == committed
    assert LedgerEntry.objects.filter(kind="invoice_debit").count() == committed
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == committed
    run.refresh_from_db()
    # Counters are derived when a chunk finishes: this one never did.
    assert (run.status, run.chunks_done, run.invoices_issued) == ("running", 0, 0)

    # The broker delivers the chunk again (acks_late): the rest is billed, nothing twice.
    outcome = billing_run_chunk_process(
        run_id=run.pk, customer_ids=ids, period=OCTOBER, now=BILLING_MOMENT
    )
    # Invoices this very run issued are its own "issued", never "already billed".
    assert outcome == {"issued": 5}
    run.refresh_from_db()
    assert (run.status, run.accounts_done, run.invoices_issued) == ("finished", 5, 5)
    assert run.accounts_already_billed == 0  # billed by this very run: not counted twice
    assert_billed_exactly_once(customers)


@pytest.mark.django_db(transaction=True)
def test_customers_are_told_only_after_the_chunks_durable_commit(price_book, monkeypatch):
    """Accounts commit asynchronously on PostgreSQL; the chunk's closing commit is synchronous
    and comes before any event is handed to the broker."""

    customers = build_accounts(3)
    run = one_chunk_run(accounts=3)

    def synchronous_commit() -> str:
        if not is_postgres():
            return "sqlite"
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    seen = {"accounts": [], "deliveries": []}
    real_bill_account = runs.bill_account_rerating

    def bill_account(**kwargs):
        seen["accounts"].append(synchronous_commit())
        return real_bill_account(**kwargs)

    def deliver_many(event_ids):
        done = BillingRun.objects.get(pk=run.pk).chunks_done
        seen["deliveries"].append((len(event_ids), done, synchronous_commit()))

    monkeypatch.setattr(runs, "bill_account_rerating", bill_account)
    monkeypatch.setattr(accounts.events.records, "_deliver_many", deliver_many)
    monkeypatch.setattr(accounts.events.records, "BATCH_SIZE", 2)
    billing_run_chunk_process(
        run_id=run.pk, customer_ids=[c.pk for c in customers], period=OCTOBER, now=BILLING_MOMENT
    )

    # Three invoice-issued events in two messages, both after the chunk was counted done.
    durable = "on" if is_postgres() else "sqlite"
    assert seen["deliveries"] == [(2, 1, durable), (1, 1, durable)]
    assert seen["accounts"] == ["off" if is_postgres() else "sqlite"] * 3
    assert synchronous_commit() == durable
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
def test_a_chunk_that_dies_before_its_durable_commit_tells_nobody(price_book, monkeypatch):

    customers = build_accounts(2)
    run = one_chunk_run(accounts=2)
    handed_over = []
    monkeypatch.setattr(accounts.events.records, "_deliver_many", handed_over.append)

    def dies(**kwargs):
        raise WorkerDied

    monkeypatch.setattr(runs, "_chunk_finished", dies)
    with pytest.raises(WorkerDied):
        billing_run_chunk_process(
            run_id=run.pk,
            customer_ids=[c.pk for c in customers],
            period=OCTOBER,
            now=BILLING_MOMENT,
        )

    # Both accounts committed, but their events wait for the sweep, not the broker.
    assert handed_over == []
    assert (
        CustomerEvent.objects.filter(kind="invoice_issued", email_sent_at__isnull=True).count() == 2
    )


@pytest.mark.django_db
def test_usage_written_after_the_chunks_read_is_rated_again_before_issue(price_book, monkeypatch):
    """The platform corrects a day while the run is between reading a chunk and issuing: the
    invoice bills the corrected usage, not what the chunk read."""

    customer, app = premium_customer(dau=5000)  # 6,000.00: up to 10,000 DAU
    real_accounts_rate = runs.accounts_rate

    def read_then_usage_arrives(**kwargs):
        prepared = real_accounts_rate(**kwargs)
        late_correction(app, now=BILLING_MOMENT - dt.timedelta(minutes=1))
        return prepared

    monkeypatch.setattr(runs, "accounts_rate", read_then_usage_arrives)
    run = one_chunk_run(accounts=1)
    outcome = billing_run_chunk_process(
        run_id=run.pk, customer_ids=[customer.pk], period=OCTOBER, now=BILLING_MOMENT
    )

    assert outcome == {"issued": 1}
    invoice = Invoice.objects.get(customer=customer)
    [line] = invoice.lines.all()
    assert (line.peak_dau, line.peak_day) == (25_000, dt.date(2026, 10, 17))
    assert invoice.total.amount == line.amount.amount > Decimal("6000.00")
    assert invoice.number == "INV-2026-000001"  # the stale attempt gave its number back
    assert ledger_balance(customer=customer) == Decimal("20000.00") - invoice.total.amount
    run.refresh_from_db()
    assert (run.invoices_issued, run.accounts_failed) == (1, 0)


@pytest.mark.django_db
def test_usage_that_keeps_changing_fails_the_account_until_a_retry(price_book, monkeypatch):

    customer, app = premium_customer(dau=5000)
    stale = services.account_rate(customer=customer, period=OCTOBER)
    Application.objects.filter(pk=app.pk).update(usage_version=7)
    monkeypatch.setattr(services, "account_rate", lambda **kwargs: stale)
    run = one_chunk_run(accounts=1)
    monkeypatch.setattr("invoices.run.runs.accounts_rate", lambda **kwargs: {customer.pk: stale})
    assert billing_run_chunk_process(
        run_id=run.pk, customer_ids=[customer.pk], period=OCTOBER, now=BILLING_MOMENT
    ) == {"failed": 1}
    assert "usage kept changing" in BillingRunError.objects.get(run=run).error
    assert not Invoice.objects.exists()
    monkeypatch.undo()

    assert billing_run_chunk_process(
        run_id=run.pk, customer_ids=[customer.pk], period=OCTOBER, now=BILLING_MOMENT
    ) == {"issued": 1}
    assert BillingRunError.objects.get(run=run).resolved_at == BILLING_MOMENT
    assert Invoice.objects.get(customer=customer).number == "INV-2026-000001"


@pytest.mark.django_db
def test_exception_after_k_accounts_rolls_that_account_back_and_a_rerun_finishes(
    price_book, monkeypatch, django_capture_on_commit_callbacks, small_chunks
):
    customers = build_accounts(5)

    real_debit = invoices.documents.issuing.debit_row
    calls = {"n": 0}

    def debit_fails_after_two(**kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionError("ledger unavailable")
        return real_debit(**kwargs)

    monkeypatch.setattr("invoices.documents.issuing.debit_row", debit_fails_after_two)
    with django_capture_on_commit_callbacks(execute=True):
        first = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    first.refresh_from_db()
    assert (first.invoices_issued, first.accounts_failed, first.accounts_done) == (2, 3, 5)
    assert first.status == BillingRun.Status.FINISHED
    # The failed accounts rolled back whole: no invoice, no number, no debit.
    assert Invoice.objects.count() == 2
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 2
    errors = BillingRunError.objects.filter(run=first)
    assert errors.count() == 3
    assert all("ConnectionError: ledger unavailable" in e.error for e in errors)

    monkeypatch.setattr("invoices.documents.issuing.debit_row", real_debit)
    with django_capture_on_commit_callbacks(execute=True):
        second = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    second.refresh_from_db()
    assert (second.accounts_total, second.invoices_issued) == (3, 3)
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
def test_failing_account_is_recorded_others_go_on_and_retry_resolves_it(
    price_book, django_capture_on_commit_callbacks
):
    good = build_accounts(2)
    bad, bad_app = premium_customer(dau=5000)
    # Ultragroup storage is not sold on Premium: the rating engine refuses this account.
    addon_change(bad_app, "ultragroup_storage_extension", 1, dt.date(2026, 10, 1))

    with django_capture_on_commit_callbacks(execute=True):
        run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)

    run.refresh_from_db()
    assert (run.invoices_issued, run.accounts_failed, run.accounts_done) == (2, 1, 3)
    error = BillingRunError.objects.get(run=run)
    assert error.customer_id == bad.pk
    assert "RatingError" in error.error and "not available on the Premium plan" in error.error
    assert error.resolved_at is None
    assert not Invoice.objects.filter(customer=bad).exists()

    # Retrying without a fix fails again: same error row, counts unchanged.
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_retry_failed(run=run, now=BILLING_MOMENT)
    run.refresh_from_db()
    assert (run.accounts_failed, run.accounts_done, run.status) == (1, 3, "finished")
    assert BillingRunError.objects.filter(run=run).count() == 1

    AddOnChange.objects.filter(application=bad_app).update(cancelled_at=BILLING_MOMENT)
    retry_moment = BILLING_MOMENT + dt.timedelta(hours=5)
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_retry_failed(run=run, now=retry_moment)

    run.refresh_from_db()
    assert (run.invoices_issued, run.accounts_failed, run.accounts_done) == (3, 0, 3)
    assert run.status == BillingRun.Status.FINISHED
    error.refresh_from_db()
    assert error.resolved_at == retry_moment
    assert Invoice.objects.get(customer=bad).issued_at == retry_moment
    assert_billed_exactly_once([*good, bad])


@pytest.mark.django_db
def test_candidates_are_paid_contracted_or_high_volume_and_not_yet_billed(price_book):
    premium, _ = premium_customer()
    free = CustomerFactory()
    ApplicationFactory(customer=free, plan="free", created_on=dt.date(2026, 9, 1))
    free_high_volume = CustomerFactory()
    busy = ApplicationFactory(
        customer=free_high_volume, plan="free", created_on=dt.date(2026, 9, 1)
    )
    usage(busy, dt.date(2026, 10, 3), 10, delivered_messages=2_000_001)
    later_premium = CustomerFactory()  # Premium only from November: nothing for October
    late = ApplicationFactory(customer=later_premium, plan="free", created_on=dt.date(2026, 9, 1))

    plan_change(late, "premium", dt.date(2026, 11, 1))
    downgraded = CustomerFactory()  # Premium until 30 September: Free all October
    down = ApplicationFactory(customer=downgraded, plan="premium", created_on=dt.date(2026, 8, 1))
    plan_change(down, "free", dt.date(2026, 10, 1))
    downgraded_mid = CustomerFactory()  # Premium until 14 October: still billed
    mid = ApplicationFactory(
        customer=downgraded_mid, plan="premium", created_on=dt.date(2026, 8, 1)
    )
    plan_change(mid, "free", dt.date(2026, 10, 15))

    candidates = set(billing_run_candidates(period=OCTOBER))
    assert candidates == {premium, free_high_volume, downgraded_mid}

    bill_customer(customer=premium, period=OCTOBER, now=BILLING_MOMENT)
    assert set(billing_run_candidates(period=OCTOBER)) == {free_high_volume, downgraded_mid}


@pytest.mark.django_db
def test_bill_command_dry_run_prints_and_writes_nothing(price_book):
    issued, _ = premium_customer(dau=25_000, name="Alpha Chat Ltd")
    held, held_app = premium_customer(name="Beta Games Ltd")
    usage(held_app, dt.date(2026, 10, 2), 1, delivered_messages=4_000_000)
    tables = (Invoice, InvoiceLine, LedgerEntry, BillingRun, NumberSequence, CustomerEvent)
    before = [model.objects.count() for model in tables]
    out = StringIO()

    call_command("bill", "--period", "2026-10", "--dry-run", stdout=out)

    assert [model.objects.count() for model in tables] == before
    text = out.getvalue()
    assert "ISSUE" in text and "Alpha Chat Ltd" in text and "¥12,000.00" in text
    assert "HOLD" in text and "Beta Games Ltd" in text and "4,000,000 delivered" in text
    assert "would issue 1 invoices (¥12,000.00), hold 1, skip 0, fail 0" in text
    assert "Nothing was written." in text


@pytest.mark.django_db(transaction=True)
def test_bill_command_inline_bills_the_month(price_book, monkeypatch):
    customers = build_accounts(2)
    out = StringIO()
    actors = []
    bill_chunk = runs.billing_run_chunk_process

    def chunk_seen(**kwargs):
        actors.append(current_system_actor())
        return bill_chunk(**kwargs)

    monkeypatch.setattr(runs, "billing_run_chunk_process", chunk_seen)
    call_command("bill", "--period", "2026-10", "--inline", stdout=out)
    # Its chunks' writes name the run in the audit trail, as a worker's do (invoices.run.tasks).
    assert actors == ["billing run 2026-10"]
    assert "2 issued, 0 held, 0 skipped, 0 already billed, 0 failed" in out.getvalue()
    # Issue dates come from the real clock here; only the one-per-account facts matter.
    assert Invoice.objects.filter(status="issued").count() == 2
    assert LedgerEntry.objects.filter(kind="invoice_debit").count() == 2
    assert {c.pk for c in customers} == set(Invoice.objects.values_list("customer", flat=True))


@pytest.mark.django_db
def test_bill_command_with_nothing_to_bill_starts_no_run(price_book):
    out = StringIO()
    call_command("bill", "--period", "2026-10", "--inline", stdout=out)
    assert "nothing to bill for 2026-10" in out.getvalue()
    assert not BillingRun.objects.exists()


def test_bill_command_refuses_bad_or_unfinished_periods(db):
    with pytest.raises(CommandError, match="2026-10"):
        call_command("bill", "--period", "October")
    with pytest.raises(CommandError, match="not over yet"):
        call_command("bill", "--period", "2999-01")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_on_postgresql_bill_each_account_once(price_book, settings):
    settings.BILLING_RUN_CHUNK_SIZE = 3
    customers = build_accounts(12)
    runs: list[BillingRun] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        try:
            barrier.wait()
            runs.append(billing_run_start(period=OCTOBER, now=BILLING_MOMENT))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert_billed_exactly_once(customers)
    finished = [BillingRun.objects.get(pk=run.pk) for run in runs]
    assert sum(run.invoices_issued for run in finished) == 12
    for run in finished:
        assert run.status == BillingRun.Status.FINISHED
        assert run.accounts_failed == 0
        assert run.invoices_issued + run.accounts_already_billed == run.accounts_total


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_usage_write_during_the_issue_waits_for_it_then_meets_the_invoice(price_book):
    """The issuing transaction holds the customer's applications FOR SHARE: a usage write for
    them waits until the invoice is committed, then finds the month invoiced and is refused
    (the correction goes through a credit note) instead of changing usage that was billed."""

    customer, app = premium_customer(dau=5000)
    prepared = services.account_rate(customer=customer, period=OCTOBER)
    issuing_holds_its_locks = threading.Event()
    ingest_may_go = threading.Event()
    seen: dict[str, object] = {}
    real_issue = services.statements.issue_insert

    def issue_then_pause(*args, **kwargs):
        written = real_issue(*args, **kwargs)
        issuing_holds_its_locks.set()
        ingest_may_go.wait(5)
        return written

    def ingest() -> None:
        try:
            issuing_holds_its_locks.wait(5)
            ingest_may_go.set()
            try:
                late_correction(app, now=BILLING_MOMENT)
                seen["ingest"] = "stored"
            except UsageBilledMonthError as exc:
                seen["ingest"] = exc.conflicts[0]["invoice"]
        finally:
            connection.close()

    services.statements.issue_insert = issue_then_pause
    try:
        thread = threading.Thread(target=ingest)
        thread.start()
        with transaction.atomic():
            outcome = services.bill_account(
                customer_id=customer.pk,
                period=OCTOBER,
                now=BILLING_MOMENT,
                prepared=prepared,
                invoice_absent=True,
            )
            ingest_may_go.wait(5)
            thread.join(0.5)
            seen["ingest_finished_before_commit"] = not thread.is_alive()
        thread.join(10)
    finally:
        services.statements.issue_insert = real_issue

    assert outcome == "issued"
    assert seen == {"ingest_finished_before_commit": False, "ingest": "INV-2026-000001"}
    assert DailyUsage.objects.get(application=app, day=dt.date(2026, 10, 17)).dau == 5000


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_same_account_billed_from_two_threads_at_once(price_book):
    customer, _ = premium_customer()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def bill() -> None:
        try:
            barrier.wait()
            outcomes.append(bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT))
        finally:
            connection.close()

    threads = [threading.Thread(target=bill) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["already_billed", "issued"]
    assert_billed_exactly_once([customer])


@pytest.mark.django_db
def test_monthly_task_bills_the_previous_month(price_book, django_capture_on_commit_callbacks):

    customers = build_accounts(2)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start_monthly_billing.delay(BILLING_MOMENT.isoformat()).get()

    run = BillingRun.objects.get(pk=run_id)
    assert run.period == dt.date(2026, 10, 1)
    assert_billed_exactly_once(customers)
    assert Invoice.objects.first().issue_date == dt.date(2026, 11, 2)


@pytest.mark.django_db
def test_beat_schedule_is_installed_by_the_database_scheduler(monkeypatch):

    # The scheduler closes "old" connections between ticks; the test's connection must stay.
    monkeypatch.setattr(beat_schedulers, "close_old_connections", lambda: None)
    app.loader.import_default_modules()
    # django-celery-beat only loads crontabs due within about two hours: just before midnight
    # Shanghai on the 1st, the month-end entry must be among them.
    with freeze_time(dt.datetime(2026, 11, 1, 23, 30, tzinfo=SHANGHAI)):
        scheduler = beat_schedulers.DatabaseScheduler(app=app)
        assert "month-end-billing" in scheduler.schedule
        assert "daily-arrears-check" in scheduler.schedule
        # What beat reloads from the database on its next sync (not only the settings dict).
        assert {"month-end-billing", "daily-arrears-check"} <= set(scheduler.all_as_schedule())

    monthly = PeriodicTask.objects.get(name="month-end-billing")
    assert monthly.task == "invoices.tasks.start_monthly_billing"
    assert monthly.task in app.tasks
    cron = monthly.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year) == ("0", "0", "2", "*")
    assert str(cron.timezone) == "Asia/Shanghai"
    # After the September run on 2 October, the next one is 00:00 on 2 November, Shanghai.
    last_run = dt.datetime(2026, 10, 2, 0, 0, tzinfo=SHANGHAI)
    start, remaining, _now = cron.schedule.remaining_delta(last_run)
    assert (start + remaining).astimezone(SHANGHAI) == dt.datetime(
        2026, 11, 2, 0, 0, tzinfo=SHANGHAI
    )

    daily = PeriodicTask.objects.get(name="daily-arrears-check")
    assert daily.task == "invoices.tasks.enforce_arrears" and daily.task in app.tasks
    assert (daily.crontab.hour, daily.crontab.day_of_month) == ("0", "*")


@pytest.mark.django_db
def test_every_account_gets_one_period_invoice_even_across_months(price_book):
    customer, app = premium_customer(dau=5000)
    october_usage(app, {1: 100})
    usage(app, dt.date(2026, 11, 4), 100)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    bill_customer(
        customer=customer, period=Period(2026, 11), now=dt.datetime(2026, 12, 2, tzinfo=SHANGHAI)
    )
    assert list(
        Invoice.objects.filter(customer=customer)
        .order_by("period")
        .values_list("number", flat=True)
    ) == ["INV-2026-000001", "INV-2026-000002"]
    assert ledger_balance(customer=customer) == Decimal("8000.00")


@pytest.mark.django_db
def test_demo_data_bills_issued_held_and_arrears(price_book, django_capture_on_commit_callbacks):

    with freeze_time(dt.datetime(2026, 11, 1, 12, 0, tzinfo=SHANGHAI)):
        call_command("load_demo_data", stdout=StringIO())
        call_command("load_demo_data", stdout=StringIO())  # idempotent
    with django_capture_on_commit_callbacks(execute=True):
        run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)

    run.refresh_from_db()
    assert (run.invoices_issued, run.invoices_held, run.accounts_failed) == (5, 1, 0)
    assert Invoice.objects.get(customer__external_id="demo-cobalt").status == "held"
    aurora = Invoice.objects.get(customer__external_id="demo-aurora")
    # Premium at peak 18,500 (9,000) + keep-alive 2,000 + 2 x 1,200 sensitive words.
    assert aurora.total.amount == Decimal("13400.00")
    echo = Invoice.objects.get(customer__external_id="demo-echo")
    assert echo.total.amount == Decimal("3096.77")  # 6,000 x 16/31
    beacon = Invoice.objects.get(customer__external_id="demo-beacon").customer
    assert ledger_balance(customer=beacon) == Decimal("-6500.00")
    assert beacon.arrears_since == dt.date(2026, 11, 2)
    assert not Invoice.objects.filter(customer__external_id="demo-foxtrot").exists()


# --- A run always finishes, and a stuck run can be recovered ----------------------------------


class SmtpDown:
    """An e-mail backend whose server never answers."""

    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server down")


def closed_port() -> int:

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("down", ["webhook receiver", "smtp server"])
def test_bill_inline_bills_every_account_when_deliveries_fail(price_book, settings, down):
    """Deliveries never break billing: here they even run in-process (eager tasks) and raise
    `Retry`; every chunk is still billed, and the events wait for the worker or the sweep."""

    settings.BILLING_RUN_CHUNK_SIZE = 2
    if down == "webhook receiver":
        settings.BILLING_WEBHOOK_URL = f"http://127.0.0.1:{closed_port()}/hook"
        settings.BILLING_WEBHOOK_SECRET = "s3cret"
    else:
        settings.EMAIL_BACKEND = "tests.invoices.test_billing_run.SmtpDown"
    customers = build_accounts(5)

    with freeze_time(BILLING_MOMENT):
        call_command("bill", "--period", "2026-10", "--inline", stdout=StringIO())

    run = BillingRun.objects.get()
    assert (run.status, run.chunks_done, run.chunks_total) == ("finished", 3, 3)
    assert (run.accounts_done, run.invoices_issued, run.accounts_failed) == (5, 5, 0)
    assert_billed_exactly_once(customers)
    if down == "smtp server":
        # Never e-mailed (the invoices, and the receipts of the deposits before the run): the
        # sweep (`deliver_pending_events`) picks them up.
        unsent = CustomerEvent.objects.filter(email_sent_at__isnull=True)
        assert unsent.filter(kind="invoice_issued").count() == 5
        assert unsent.count() == CustomerEvent.objects.count()


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("killed", ["inside an account", "before a chunk's read"])
def test_bill_inline_survives_its_database_connection_being_killed(
    price_book, settings, monkeypatch, killed
):
    # Circular at import time: test_worker imports this module's helpers.
    from tests.invoices.test_worker import worker_database_url  # noqa: PLC0415

    settings.BILLING_RUN_CHUNK_SIZE = 2
    customers = build_accounts(5)
    calls = {"n": 0}

    def kill_my_connection() -> None:
        pid = connection.connection.info.backend_pid
        with psycopg.connect(worker_database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    if killed == "inside an account":
        real = runs.bill_account_rerating

        def then_bill(**kwargs):
            calls["n"] += 1
            if calls["n"] == 3:  # the first account of the second chunk
                kill_my_connection()
            return real(**kwargs)

        monkeypatch.setattr(runs, "bill_account_rerating", then_bill)
    else:
        real = runs.accounts_rate

        def then_bill(**kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # the second chunk's rating read
                kill_my_connection()
            return real(**kwargs)

        monkeypatch.setattr(runs, "accounts_rate", then_bill)

    with freeze_time(BILLING_MOMENT):
        call_command("bill", "--period", "2026-10", "--inline", stdout=StringIO())

    assert calls["n"] > 3
    run = BillingRun.objects.get()
    assert (run.status, run.chunks_done, run.accounts_done, run.invoices_issued) == (
        "finished",
        3,
        5,
        5,
    )
    assert run.accounts_failed == 0
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
def test_counters_come_from_what_was_written_never_added_twice(
    price_book, monkeypatch, django_capture_on_commit_callbacks
):
    """A held account billed by a redelivered chunk that fails it once, then by "retry failed":
    it is one held invoice, counted once (the old increments ended at 3/2 accounts, 2 held)."""

    issued_customer = build_accounts(1)[0]
    held_customer, held_app = premium_customer(dau=5000)
    usage(held_app, dt.date(2026, 10, 29), 1, delivered_messages=2_500_000)
    ids = [issued_customer.pk, held_customer.pk]
    run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT, dispatch=False)
    assert run.chunks_total == 1

    def process() -> dict:
        return billing_run_chunk_process(
            run_id=run.pk, customer_ids=ids, period=OCTOBER, now=BILLING_MOMENT, chunk_number=1
        )

    assert process() == {"issued": 1, "held": 1}
    real = runs.bill_account_rerating

    def held_account_fails(**kwargs):
        if kwargs["customer_id"] == held_customer.pk:
            raise RuntimeError("rating service hiccup")
        return real(**kwargs)

    monkeypatch.setattr(runs, "bill_account_rerating", held_account_fails)
    assert process() == {"issued": 1, "failed": 1}  # the broker delivered the chunk again
    monkeypatch.undo()
    run.refresh_from_db()
    assert (run.accounts_done, run.invoices_issued, run.invoices_held, run.accounts_failed) == (
        3,  # the held invoice and the open error: finance sees both until the retry
        1,
        1,
        1,
    )

    with django_capture_on_commit_callbacks(execute=True):
        billing_run_retry_failed(run=run, now=BILLING_MOMENT)
    run.refresh_from_db()
    assert run.status == BillingRun.Status.FINISHED
    assert (run.accounts_done, run.accounts_total) == (2, 2)
    assert (run.invoices_issued, run.invoices_held, run.accounts_failed) == (1, 1, 0)
    assert (run.accounts_skipped, run.accounts_already_billed) == (0, 0)
    assert (run.chunks_done, run.chunks_total) == (2, 2)


@pytest.mark.django_db
def test_skipped_and_already_billed_accounts_are_counted_once_per_run(price_book):
    """Outcomes that write no row are kept per chunk by customer: delivered twice, counted
    once."""
    billed_before = build_accounts(1)[0]
    nothing_to_bill = CustomerFactory()  # no application: rated, nothing to bill
    run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT, dispatch=False)
    ids = [billed_before.pk, nothing_to_bill.pk]
    bill_customer(customer=billed_before, period=OCTOBER, now=BILLING_MOMENT)  # finance, by hand
    for _delivery in range(2):
        outcome = billing_run_chunk_process(
            run_id=run.pk, customer_ids=ids, period=OCTOBER, now=BILLING_MOMENT, chunk_number=1
        )
        assert outcome == {"already_billed": 1, "skipped": 1}
    run.refresh_from_db()
    assert (run.accounts_already_billed, run.accounts_skipped, run.accounts_done) == (1, 1, 2)
    assert run.status == BillingRun.Status.FINISHED


STALL_AFTER = dt.timedelta(seconds=600)


@pytest.mark.django_db
def test_a_run_without_progress_for_the_threshold_is_stalled(price_book, settings):

    settings.BILLING_RUN_STALL_AFTER = 600
    build_accounts(1)
    run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT, dispatch=False)
    just_before = BILLING_MOMENT + STALL_AFTER
    after = just_before + dt.timedelta(seconds=1)

    assert not billing_run_is_stalled(run=run, now=just_before)
    assert list(billing_runs_stalled(now=just_before)) == []
    assert billing_run_is_stalled(run=run, now=after)
    assert list(billing_runs_stalled(now=after)) == [run]

    BillingRun.objects.filter(pk=run.pk).update(status=BillingRun.Status.FINISHED)
    run.refresh_from_db()
    assert not billing_run_is_stalled(run=run, now=after + STALL_AFTER)
    assert list(billing_runs_stalled(now=after + STALL_AFTER)) == []


def lost_second_chunk_run(customers) -> BillingRun:
    """A run of two chunks whose first one was billed and whose second one was lost."""
    run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT, dispatch=False)
    first = run.chunks.get(number=1)
    billing_run_chunk_process(
        run_id=run.pk,
        customer_ids=first.customer_ids,
        period=OCTOBER,
        now=BILLING_MOMENT,
        chunk_number=1,
    )
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.invoices_issued) == ("running", 1, 2)
    return run


@pytest.mark.django_db
def test_resume_bills_what_is_left_of_a_stalled_run(
    price_book, small_chunks, django_capture_on_commit_callbacks
):

    customers = build_accounts(4)
    with freeze_time(BILLING_MOMENT):
        run = lost_second_chunk_run(customers)
    with pytest.raises(InvoiceError, match="not stalled"):
        billing_run_resume(run=run, now=BILLING_MOMENT + dt.timedelta(minutes=5))

    later = BILLING_MOMENT + dt.timedelta(minutes=30)
    with freeze_time(later), django_capture_on_commit_callbacks(execute=True):
        billing_run_resume(run=run, now=later)

    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.chunks_total) == ("finished", 2, 2)
    assert (run.accounts_done, run.invoices_issued, run.accounts_already_billed) == (4, 4, 0)
    assert_billed_exactly_once(customers)
    # Billed at the run's moment, whenever resumed.
    assert set(Invoice.objects.values_list("issue_date", flat=True)) == {dt.date(2026, 11, 2)}


@pytest.mark.django_db
def test_close_as_interrupted_then_resume(
    price_book, small_chunks, django_capture_on_commit_callbacks
):

    customers = build_accounts(4)
    with freeze_time(BILLING_MOMENT):
        run = lost_second_chunk_run(customers)
    with pytest.raises(InvoiceError, match="not stalled"):
        billing_run_close_interrupted(run=run, now=BILLING_MOMENT + dt.timedelta(minutes=5))

    later = BILLING_MOMENT + dt.timedelta(minutes=30)
    billing_run_close_interrupted(run=run, now=later)
    run.refresh_from_db()
    assert (run.status, run.finished_at, run.invoices_issued) == ("interrupted", later, 2)

    # The lost chunk turns up after all: an interrupted run bills nothing more.
    second = run.chunks.get(number=2)
    outcome = billing_run_chunk_process(
        run_id=run.pk,
        customer_ids=second.customer_ids,
        period=OCTOBER,
        now=BILLING_MOMENT,
        chunk_number=2,
    )
    assert outcome == {"interrupted": 2}
    assert Invoice.objects.count() == 2

    with freeze_time(later), django_capture_on_commit_callbacks(execute=True):
        billing_run_resume(run=run, now=later)
    run.refresh_from_db()
    assert (run.status, run.accounts_done, run.invoices_issued) == ("finished", 4, 4)
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
@pytest.mark.parametrize("inline", [False, True])
def test_bill_command_resumes_the_months_stalled_run_instead_of_a_second_one(
    price_book, small_chunks, django_capture_on_commit_callbacks, inline
):

    customers = build_accounts(4)
    with freeze_time(BILLING_MOMENT):
        run = lost_second_chunk_run(customers)
    out = StringIO()
    with (
        freeze_time(BILLING_MOMENT + dt.timedelta(hours=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        # Queued chunks run when the command's transaction commits: it does not wait here.
        args = ["bill", "--period", "2026-10", "--inline" if inline else "--no-wait"]
        call_command(*args, stdout=out)

    assert f"billing run #{run.pk} for 2026-10 resumed" in out.getvalue()
    if inline:
        assert "4 issued, 0 held, 0 skipped, 0 already billed, 0 failed" in out.getvalue()
    assert list(BillingRun.objects.values_list("pk", "status")) == [(run.pk, "finished")]
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
def test_monthly_task_resumes_a_stalled_run(
    price_book, small_chunks, django_capture_on_commit_callbacks
):

    customers = build_accounts(4)
    with freeze_time(BILLING_MOMENT):
        run = lost_second_chunk_run(customers)
    later = BILLING_MOMENT + dt.timedelta(hours=1)
    with freeze_time(later), django_capture_on_commit_callbacks(execute=True):
        assert start_monthly_billing.delay(later.isoformat()).get() == run.pk
    assert BillingRun.objects.get().status == BillingRun.Status.FINISHED
    assert_billed_exactly_once(customers)


@pytest.mark.django_db
def test_a_broker_outage_at_the_start_leaves_a_run_that_resumes(
    price_book, small_chunks, django_capture_on_commit_callbacks, monkeypatch, settings
):
    """The chunks are queued after the run's rows commit: a broker that is down then is logged,
    not raised (no 500 in the admin); the run makes no progress, shows as stalled, and a resume
    bills every account once."""

    customers = build_accounts(3)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(celery_app.amqp, "send_task_message", broker_down)
    celery_app.conf.task_always_eager = False
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    finally:
        celery_app.conf.task_always_eager = True
    monkeypatch.undo()

    run.refresh_from_db()
    assert run.status == BillingRun.Status.RUNNING
    assert run.accounts_done == 0
    assert not Invoice.objects.exists()
    later = BILLING_MOMENT + dt.timedelta(seconds=settings.BILLING_RUN_STALL_AFTER + 60)
    assert billing_run_is_stalled(run=run, now=later)

    with django_capture_on_commit_callbacks(execute=True):
        billing_run_resume(run=run, now=later)
    run.refresh_from_db()
    assert run.status == BillingRun.Status.FINISHED
    assert_billed_exactly_once(customers)

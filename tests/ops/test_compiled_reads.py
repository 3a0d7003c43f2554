"""`billingsite.queries.CompiledRead`: a queryset compiled once per process, sent again with
each call's inputs, gives what iterating the queryset gives; what it cannot send again runs
through the ORM (the portable path), as does everything with `COMPILED_READS` off."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Application, Customer, LedgerEntry
from accounts.selectors import ledger_balance, with_balance_in_statement
from billingsite import queries
from billingsite.queries import any_of, compiled_read
from tests.factories import ApplicationFactory, CustomerFactory, CustomerUserFactory, deposit

pytestmark = pytest.mark.django_db


class Counted:
    """A build function that counts how often it was asked for its queryset."""

    def __init__(self, build):
        self.build, self.calls = build, 0

    def __call__(self, **inputs):
        self.calls += 1
        return self.build(**inputs)


def fields(obj, *extra) -> dict:
    values = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    return {**values, **{name: getattr(obj, name) for name in extra}}


@pytest.fixture(params=["prepared", "inlined", "orm"])
def compiled(request, monkeypatch, settings):
    """Compiled and prepared on the server (PostgreSQL; elsewhere as inlined), compiled and
    sent with the parameters inlined (BILLING_RUN_PREPARED_STATEMENTS off), or the ORM."""
    monkeypatch.setattr(queries, "COMPILED_READS", request.param != "orm")
    settings.BILLING_RUN_PREPARED_STATEMENTS = request.param == "prepared"
    return request.param != "orm"


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares statements")
@pytest.mark.parametrize("prepared", [True, False])
def test_on_postgresql_a_compiled_read_is_planned_once_per_connection(
    customers, settings, prepared
):
    """Prepared on the connection's first call, its later calls send only the inputs; with
    BILLING_RUN_PREPARED_STATEMENTS off nothing is prepared (a pooler that drops them). The
    same rows either way."""
    settings.BILLING_RUN_PREPARED_STATEMENTS = prepared
    read = compiled_read(
        lambda *, customer_id: LedgerEntry.objects.filter(customer_id=customer_id).order_by("id")
    )
    before = prepared_statements()
    with CaptureQueriesContext(connection) as sent:
        rows = [read(customer_id=customer.pk) for customer in customers]
    added = [s for s in prepared_statements() if s not in before and "accounts_ledgerentry" in s]
    assert len(added) == (1 if prepared else 0)
    if prepared:
        assert '"customer_id" = $1' in added[0]
    assert [[entry.amount.amount for entry in entries] for entries in rows] == [
        [Decimal("100.50"), Decimal("20.25")],
        [Decimal("200.50"), Decimal("20.25")],
        [Decimal("300.50"), Decimal("20.25")],
    ]
    # Logged as Django logs its own queries: the statement with the inputs inlined.
    assert [
        q["sql"].endswith(f'"customer_id" = {c.pk} ORDER BY "accounts_ledgerentry"."id" ASC')
        for q, c in zip(sent, customers, strict=True)
    ] == [True, True, True]


@pytest.fixture
def customers(price_book):
    customers = [CustomerFactory(name=f"Customer {n}") for n in range(3)]
    for n, customer in enumerate(customers):
        for k in range(n + 1):
            ApplicationFactory(customer=customer, app_key=f"app-{n}-{k}")
        deposit(customer, f"{100 * (n + 1)}.50", key=f"deposit-{n}-a")
        deposit(customer, "20.25", key=f"deposit-{n}-b")
    return customers


def test_model_rows_with_annotations_are_the_querysets(customers, compiled):
    def build(*, customer_id, kind):
        return with_balance_in_statement(
            LedgerEntry.objects.filter(customer_id=customer_id, kind=kind)
        ).order_by("created_at", "id")

    read = compiled_read(Counted(build))
    for customer in customers * 2:
        inputs = {"customer_id": customer.pk, "kind": LedgerEntry.Kind.DEPOSIT}
        got = read(**inputs)
        want = list(build(**inputs))
        assert [fields(e, "balance_in_statement") for e in got] == [
            fields(e, "balance_in_statement") for e in want
        ]
        assert len(got) == 2
        assert got[0].amount == want[0].amount  # Money, from its two columns
    assert [e.balance_in_statement for e in read(**inputs)] == [
        Decimal("300.50"),
        Decimal("320.75"),
    ]
    # Compiled: the queryset was built once for six calls (with sentinels), else every time.
    assert read.build.calls == (1 if compiled else 7)


def test_select_related_values_list_flat_and_pages(customers, compiled):
    @compiled_read
    def apps(*, customer_ids):
        return (
            Application.objects.filter(any_of("customer_id", customer_ids))
            .select_related("customer")
            .order_by("app_key")
        )

    @compiled_read
    def keys(*, customer_id):
        return Application.objects.filter(customer_id=customer_id).values_list("app_key", flat=True)

    @compiled_read
    def totals(*, customer_id):
        return (
            LedgerEntry.objects.filter(customer_id=customer_id)
            .order_by()
            .values("customer_id")
            .annotate(count=Count("id"), total=Sum("amount"))
            .values_list("count", "total")
        )

    ids = [customers[2].pk, customers[0].pk]
    got = apps(customer_ids=ids)
    assert [(a.app_key, a.customer.name) for a in got] == [
        ("app-0-0", "Customer 0"),
        ("app-2-0", "Customer 2"),
        ("app-2-1", "Customer 2"),
        ("app-2-2", "Customer 2"),
    ]
    with CaptureQueriesContext(connection) as queries_run:
        assert got[1].customer.pk == customers[2].pk
    assert len(queries_run) == 0  # select_related filled the customer
    assert apps(customer_ids=[customers[1].pk])[0].app_key == "app-1-0"
    assert apps(customer_ids=[]) == []
    assert sorted(keys(customer_id=customers[1].pk)) == ["app-1-0", "app-1-1"]
    assert totals.first(customer_id=customers[1].pk) == (2, Decimal("220.75"))
    assert totals.first(customer_id=10**12) is None
    pages = [apps.slice(start, start + 2, customer_ids=ids) for start in (0, 2, 4)]
    assert [[a.app_key for a in page] for page in pages] == [
        ["app-0-0", "app-2-0"],
        ["app-2-1", "app-2-2"],
        [],
    ]
    assert apps.slice(3, 3, customer_ids=ids) == []


def test_compiled_sends_the_orm_statement_with_the_inputs(customers):
    if not queries.COMPILED_READS:
        pytest.skip("compiled reads are off")
    user = CustomerUserFactory(customer=customers[1]).user
    read = compiled_read(lambda *, user_id: Customer.objects.filter(users__user_id=user_id)[:1])
    with CaptureQueriesContext(connection) as orm:
        want = list(Customer.objects.filter(users__user_id=user.pk)[:1])
    read.first(user_id=customers[0].pk)  # compiles with another input first
    with CaptureQueriesContext(connection) as sent:
        got = read.first(user_id=user.pk)
    assert got == want[0] and got.name == "Customer 1"
    assert [q["sql"] for q in sent] == [q["sql"] for q in orm]


def test_inputs_it_cannot_find_run_through_the_orm(customers):
    """A Decimal input is not one the sentinels find, a datetime is; a bool is not an int."""
    by_amount = Counted(
        lambda *, amount: LedgerEntry.objects.filter(amount__gt=amount).order_by("id")
    )
    read = compiled_read(by_amount)
    assert len(read(amount=Decimal("150"))) == 2
    assert len(read(amount=Decimal("250"))) == 1
    assert by_amount.calls == 2  # no statement: both through the ORM

    before = Counted(
        lambda *, now: LedgerEntry.objects.filter(created_at__lte=now).values_list("id", flat=True)
    )
    read = compiled_read(before)
    now = timezone.now()
    assert len(read(now=now)) == 6
    assert read(now=now - dt.timedelta(days=3650)) == []
    assert before.calls == (1 if queries.COMPILED_READS else 2)

    flags = Counted(lambda *, active: Customer.objects.filter(monthly_statement=active))
    read = compiled_read(flags)
    read(active=True), read(active=False)
    assert flags.calls == 2


def test_the_same_read_with_other_input_types_is_another_statement(customers):
    """The statement is kept per input types: a text where a number was is not sent into the
    number's statement."""
    read = compiled_read(lambda *, key: Application.objects.filter(app_key=key))
    assert read(key="app-1-0")[0].customer_id == customers[1].pk
    assert read(key=12345) == []


def test_ledger_balance_reads_the_same_both_ways(customers, compiled):
    assert ledger_balance(customer=customers[2]) == Decimal("320.75")
    assert ledger_balance(customer=customers[0].pk) == Decimal("120.75")
    assert ledger_balance(customer=CustomerFactory()) == Decimal("0.00")


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite's test database is one in-memory database that the test's open transaction "
    "locks for every other connection",
)
def test_a_statement_compiled_in_one_thread_runs_on_another_threads_connection(customers):
    """gthread workers: the statement is shared by the process, each thread sends it on its own
    connection (Django refuses a connection used from another thread)."""
    from threading import Thread  # noqa: PLC0415

    from django.db import connections  # noqa: PLC0415

    read = compiled_read(lambda *, pk: Customer.objects.filter(pk=pk))
    assert read(pk=customers[0].pk)[0].name == "Customer 0"
    seen = []

    def other_thread():
        try:
            # Its own connection sees none of this test's uncommitted rows, and raises nothing.
            seen.append(read(pk=customers[0].pk))
        except Exception as error:  # noqa: BLE001
            seen.append(error)
        finally:
            connections.close_all()

    thread = Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [[]]


def test_the_apis_customer_read_is_first(customers, compiled):
    """The provisioning API's customer by external id (`accounts.api.views._customer`): the
    statement and the row of `.first()` on the same filter."""
    from accounts.api.views import _customer_by_external_id  # noqa: PLC0415

    customer = customers[2]
    with CaptureQueriesContext(connection) as orm:
        want = Customer.objects.filter(external_id=customer.external_id).first()
    _customer_by_external_id.first(external_id=customers[0].external_id)
    with CaptureQueriesContext(connection) as sent:
        got = _customer_by_external_id.first(external_id=customer.external_id)
    assert got == want == customer
    assert fields(got) == fields(want) and got.name == "Customer 2"
    assert [q["sql"] for q in sent] == [q["sql"] for q in orm]
    assert _customer_by_external_id.first(external_id="no-such-customer") is None

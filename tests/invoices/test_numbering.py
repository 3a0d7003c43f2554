"""Gapless numbers per series and year, allocated inside the issuing transaction."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from invoices.documents.numbering import number_allocate
from invoices.documents.services import bill_customer
from invoices.models import Invoice, NumberSequence
from tests.conftest import postgres_only
from tests.invoices.test_invoices import OCTOBER, SHANGHAI, premium_customer


@pytest.mark.django_db
def test_numbers_follow_each_other_per_series_and_restart_each_year():
    with transaction.atomic():
        first = [number_allocate(series="INV", year=2026) for _ in range(3)]
        credit = number_allocate(series="CN", year=2026)
        next_year = number_allocate(series="INV", year=2027)
        fourth = number_allocate(series="INV", year=2026)

    assert first == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert credit == "CN-2026-000001"
    assert next_year == "INV-2027-000001"
    assert fourth == "INV-2026-000004"
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 4


@pytest.mark.django_db
def test_a_rolled_back_issue_leaves_no_gap():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        assert number_allocate(series="INV", year=2026) == "INV-2026-000001"
        raise Boom

    with transaction.atomic():
        assert number_allocate(series="INV", year=2026) == "INV-2026-000001"


def test_numbers_are_only_given_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the issuing transaction"):
        number_allocate(series="INV", year=2026)


@pytest.mark.django_db
def test_invoice_numbers_use_the_year_of_the_issue_date(price_book):
    december = dt.datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)
    january = dt.datetime(2027, 1, 2, 0, 0, tzinfo=SHANGHAI)
    first, _ = premium_customer()
    second, _ = premium_customer()

    bill_customer(customer=first, period=OCTOBER, now=december)
    bill_customer(customer=second, period=OCTOBER, now=january)

    assert Invoice.objects.get(customer=first).number == "INV-2026-000001"
    assert Invoice.objects.get(customer=second).number == "INV-2027-000001"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_issuers_get_distinct_gapless_numbers_even_for_a_new_year():
    """Eight threads race, the year's sequence row does not exist yet; every fifth
    allocation is rolled back. The committed numbers are exactly 1..N."""
    threads_count, per_thread = 8, 6
    committed: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)
    lock = threading.Lock()

    class Rollback(Exception):
        pass

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for attempt in range(per_thread):
                try:
                    with transaction.atomic():
                        number = number_allocate(series="INV", year=2031)
                        if (index + attempt) % 5 == 0:
                            raise Rollback
                except Rollback:
                    continue
                with lock:
                    committed.append(number)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(int(number.rsplit("-", 1)[1]) for number in committed)
    assert numbers == list(range(1, len(committed) + 1))
    assert len(committed) < threads_count * per_thread  # some really rolled back
    assert NumberSequence.objects.get(series="INV", year=2031).last_number == len(committed)

"""`billingsite.queries.any_of`: the rows of `__in`, with the id list as one parameter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Application, Customer
from billingsite.queries import any_of
from tests.factories import ApplicationFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("pick", [[], [0], [0, 2], [0, 1, 2, 3]])
def test_any_of_selects_what_in_selects(price_book, pick):
    customers = CustomerFactory.create_batch(4)
    for customer in customers:
        ApplicationFactory.create_batch(2, customer=customer)
    ids = [customers[i].pk for i in pick] + [10**12]  # an id that exists nowhere

    by_fk = Application.objects.filter(any_of("customer_id", ids)).order_by("id")
    by_pk = Customer.objects.filter(any_of("pk", ids)).order_by("id")

    assert list(by_fk) == list(Application.objects.filter(customer_id__in=ids).order_by("id"))
    assert list(by_pk) == list(Customer.objects.filter(pk__in=ids).order_by("id"))
    assert len(by_pk) == len(pick)


def test_any_of_sends_the_ids_as_one_array_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the array parameter is PostgreSQL's; other databases get IN")
    customers = CustomerFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        found = set(
            Customer.objects.filter(any_of("pk", [c.pk for c in customers])).values_list(
                "pk", flat=True
            )
        )
    assert found == {c.pk for c in customers}
    assert '"id" = ANY(' in queries[0]["sql"]
    assert "::bigint[]" in queries[0]["sql"]

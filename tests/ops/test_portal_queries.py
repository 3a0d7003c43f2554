"""The portal's SQL queries per page do not grow with a customer's history (bench/http_load.py
measures the same on 120,000 invoices)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from billingsite.clock import Period
from invoices.selectors import rate_customer_period
from tests.factories import ApplicationFactory, CustomerFactory, CustomerUserFactory, deposit, usage
from tests.portal.factories import issued_invoice

OCTOBER = Period(2026, 10)
PAGES = ("/invoices/", "/invoices/{number}/", "/this-month/", "/balance/")
# Session, the user with the login's customer (one statement), then each page's own reads (the totals of invoices and
# credit notes, which also give the paginators their counts, then a page of invoices; one
# invoice with its live fapiao request's status, its lines, its debit with the balance after
# it; the price book's version and the estimate's rating inputs (plans, add-ons, contracts,
# discounts, usage), the ledger page and balance). The charts add the month's usage rows and
# the price book's version (invoice page; the estimate's charts reuse what its rating read)
# and the ledger grouped by month (balance): one query each, whatever the history. The balance
# page reads the last invoice's debit for the days left (the financials) and for the
# low-balance threshold, and promotional credit:
# the balance's split into paid and promotional, and the grants available.
EXPECTED = {"/invoices/": 6, "/invoices/{number}/": 8, "/this-month/": 10, "/balance/": 18}


def customer_with_history(months: int):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="premium")
    usage(app, OCTOBER.start, 8_000)
    deposit(customer, "100000.00")
    lines = list(rate_customer_period(customer=customer, period=OCTOBER).lines)
    period = OCTOBER
    invoices = []
    for _ in range(months):
        invoices.append(issued_invoice(customer=customer, period=period, lines=lines))
        period = period.previous()
    return CustomerUserFactory(customer=customer).user, invoices[0].number


def queries_per_page(client, user, number) -> dict[str, int]:
    client.force_login(user)
    counts = {}
    for page in PAGES:
        # Once before counting: the price book is read once per process and change
        # (plans/price_book_cache.py), the steady state is what a page costs.
        assert client.get(page.format(number=number)).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            response = client.get(page.format(number=number))
        assert response.status_code == 200, page
        counts[page] = len(queries)
    return counts


@freeze_time("2026-11-10T10:00:00+08:00")
def test_portal_pages_cost_the_same_queries_for_one_invoice_or_a_year(client, price_book):
    one = queries_per_page(client, *customer_with_history(1))
    year = queries_per_page(client, *customer_with_history(12))
    assert year == one
    assert one == EXPECTED

"""Rating a batch of customers for a period: the one read-and-rate step of the month-end run
(`invoices.documents.services.accounts_rate`), the run-rates of the finance dashboard and the
customer admin (`invoices.selectors.run_rates`) and the customer's estimate and financials
(`invoices.selectors`). Nothing is written.

A fixed number of queries per batch, however many customers, applications, add-ons or days:
the price book (unless given), the applications, and `plans.selectors.application_inputs`
(plans, add-ons, contracts, discounts, usage).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.models import Application
from billingsite.clock import Period
from billingsite.queries import any_of, compiled_read
from plans.rating.engine import ApplicationInput, PriceBook, RatedAccount, RatingError, rate_account
from plans.selectors import (
    UsagePeaks,
    application_inputs,
    price_book_for_period,
    usage_by_application,
)


@dataclass(frozen=True)
class CustomerRating:
    """One customer rated for a period, or the reason it cannot be."""

    customer_id: int
    # Rating inputs of the applications that have a plan in the period.
    inputs: tuple[ApplicationInput, ...]
    # None exactly when `error` is set.
    rated: RatedAccount | None
    error: RatingError | None
    # app_key -> id of every application of the customer (invoice lines point to them).
    application_ids: dict[str, int]
    # (number of applications, sum of their usage versions), read before the usage that was
    # rated: usage written after the read bumps a version, which a writer compares under lock.
    usage_version: tuple[int, int]
    # app_key -> the application's usage rows of the period that were rated (the estimate's
    # "usage received through" and its charts read them instead of querying again).
    usage: dict[str, UsagePeaks]

    def rated_account(self) -> RatedAccount:
        """The rated account; raises the customer's RatingError when it could not be rated."""
        if self.error is not None:
            raise self.error
        assert self.rated is not None, "rated exactly when there is no error"
        return self.rated


@compiled_read
def _applications_of(*, customer_ids: list[int]) -> QuerySet:
    return (
        Application.objects.filter(any_of("customer_id", customer_ids))
        .only("id", "customer_id", "app_key", "name", "usage_version")
        .order_by("id")
    )


def customers_rate(
    *, customer_ids: Iterable[int], period: Period, book: PriceBook | None = None
) -> dict[int, CustomerRating]:
    """Rate each customer's applications for `period` from what is stored now, with the prices
    of the period (`book`, read when not given). A customer whose inputs cannot be priced gets
    its RatingError, the others are rated."""
    customer_ids = list(customer_ids)
    if book is None:
        book = price_book_for_period(period=period)
    # The applications (with their usage versions) are read before their usage.
    applications = _applications_of(customer_ids=customer_ids)
    usage = usage_by_application(
        application_ids=[app.id for app in applications],
        first_day=period.start,
        last_day=period.end,
    )
    inputs = application_inputs(applications=applications, period=period, usage=usage)
    by_customer: dict[int, list[ApplicationInput]] = defaultdict(list)
    app_ids: dict[int, dict[str, int]] = defaultdict(dict)
    versions: dict[int, tuple[int, int]] = {}
    usage_by_key: dict[int, dict[str, UsagePeaks]] = defaultdict(dict)
    for app in applications:
        app_ids[app.customer_id][app.app_key] = app.id
        if app.id in usage:
            usage_by_key[app.customer_id][app.app_key] = usage[app.id]
        count, total = versions.get(app.customer_id, (0, 0))
        versions[app.customer_id] = (count + 1, total + app.usage_version)
        if app.id in inputs:
            by_customer[app.customer_id].append(inputs[app.id])
    ratings: dict[int, CustomerRating] = {}
    for customer_id in customer_ids:
        customer_inputs = tuple(by_customer.get(customer_id, ()))
        rated, error = None, None
        try:
            rated = rate_account(book=book, applications=list(customer_inputs))
        except RatingError as exc:
            error = exc
        ratings[customer_id] = CustomerRating(
            customer_id=customer_id,
            inputs=customer_inputs,
            rated=rated,
            error=error,
            application_ids=app_ids.get(customer_id, {}),
            usage_version=versions.get(customer_id, (0, 0)),
            usage=usage_by_key.get(customer_id, {}),
        )
    return ratings

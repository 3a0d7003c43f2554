"""Reads about what customers owe: estimates from the one rating engine, run-rates, and the
recommended balance. Nothing here writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from accounts.models import Application, Customer
from accounts.selectors import ledger_balance
from billingsite.clock import Period
from billingsite.money import round_money
from invoices.rating import RatedAccount, rate_account
from plans.selectors import application_inputs, price_book_for_period

RECOMMENDED_MONTHS = 3


def rate_customer_period(*, customer: Customer, period: Period) -> RatedAccount:
    """Price a customer's applications for a period from the usage stored now."""
    book = price_book_for_period(period=period)
    applications = list(Application.objects.filter(customer=customer).only("id", "app_key", "name"))
    inputs = application_inputs(applications=applications, period=period)
    return rate_account(book=book, applications=list(inputs.values()))


def estimate_current_month(*, customer: Customer, today: dt.date) -> RatedAccount:
    """This month's bill so far: the whole month at today's plans and add-ons, with the peak
    DAU received to date. An estimate; the month-end run bills the real peak."""
    return rate_customer_period(customer=customer, period=Period.containing(today))


@dataclass(frozen=True)
class CustomerFinancials:
    balance: Decimal
    monthly_run_rate: Decimal
    recommended_balance: Decimal
    # Days the balance lasts at the run-rate; None when nothing is being charged.
    days_left: int | None
    arrears_since: dt.date | None
    suspension_date: dt.date | None
    suspended: bool


def financials_from(
    customer: Customer, *, balance: Decimal, run_rate: Decimal, period: Period
) -> CustomerFinancials:
    """Balance, run-rate and arrears arithmetic, for one customer or a batch of them."""
    from accounts.services import suspension_date

    days_left = None
    if run_rate > 0:
        per_day = run_rate / period.days
        days_left = max(0, int((balance / per_day).to_integral_value(rounding=ROUND_FLOOR)))
    return CustomerFinancials(
        balance=balance,
        monthly_run_rate=run_rate,
        recommended_balance=round_money(run_rate * RECOMMENDED_MONTHS),
        days_left=days_left,
        arrears_since=customer.arrears_since,
        suspension_date=suspension_date(arrears_since=customer.arrears_since)
        if customer.arrears_since
        else None,
        suspended=customer.suspended_at is not None,
    )


def customer_financials(*, customer: Customer, today: dt.date) -> CustomerFinancials:
    return financials_from(
        customer,
        balance=ledger_balance(customer=customer),
        run_rate=estimate_current_month(customer=customer, today=today).total,
        period=Period.containing(today),
    )

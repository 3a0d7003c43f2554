"""The figures behind the charts (reads only), drawn by `billingsite.charts`.

The usage chart takes the billed peak from the priced lines (an invoice's lines, the estimate's
lines or the rating inputs on the admin's usage page) and the 10,000-DAU block thresholds from
the price book's plan terms through the engine's `dau_blocks`: it never finds a peak or a block
of its own. Every function costs a fixed number of queries, whatever the history's length.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, Count, DecimalField, Q, QuerySet, Sum, When
from django.db.models.functions import TruncMonth
from django.utils.translation import gettext as _

from accounts.models import Application, DailyUsage, LedgerEntry
from billingsite.charts import BarSeries, Chart, LineSeries, Rule, chart_svg
from billingsite.clock import BILLING_TZ, Period, start_of_day
from billingsite.money import format_cny
from billingsite.queries import compiled_read
from invoices.models import Invoice
from invoices.selectors import UsageMonth
from plans.price_book_cache import cached_price_book
from plans.rating.engine import PriceBook, RatingError, dau_blocks

MONTHS = 12
DAU_FEE = "dau_fee"


def _dau_text(value) -> str:
    return f"{int(value):,}"


def _money_text(value) -> str:
    return format_cny(Decimal(value))


def months_ending(period: Period, count: int = MONTHS) -> list[Period]:
    """`count` periods, oldest first, the last one `period`."""
    periods = [period]
    while len(periods) < count:
        periods.insert(0, periods[0].previous())
    return periods


# --- usage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageChart:
    app_key: str
    app_name: str
    chart: Chart
    # The billed peaks, one per plan segment with usage: (day, DAU).
    peaks: list[tuple[dt.date, int]]


def block_thresholds(*, book: PriceBook, plan_code: str, peak_dau: int | None) -> list[int]:
    """The DAU levels where a new block starts, up to the one that covers the billed peak:
    included DAU, then + block size per block the engine bills (none for an unpaid plan)."""
    try:
        plan = book.plan(plan_code)
    except RatingError:
        return []
    if plan.dau_block_price <= 0 or plan.dau_block_size <= 0:
        return []
    blocks = dau_blocks(
        peak_dau=peak_dau or 0, included_dau=plan.included_dau, block_size=plan.dau_block_size
    )
    return [plan.included_dau + block * plan.dau_block_size for block in range(blocks + 1)]


def usage_chart(
    *,
    app_key: str,
    app_name: str,
    period: Period,
    dau_by_day: dict[dt.date, int],
    segments: Iterable[tuple[str, int | None, dt.date | None]],
    book: PriceBook,
) -> UsageChart:
    """One application's daily DAU over `period`; `segments` are (plan code, billed peak DAU,
    peak day) of its DAU lines."""
    days = [period.start + dt.timedelta(days=offset) for offset in range(period.days)]
    peaks = [(day, peak) for _code, peak, day in segments if day is not None and peak is not None]
    thresholds = sorted(
        {
            level
            for code, peak, _day in segments
            for level in block_thresholds(book=book, plan_code=code, peak_dau=peak)
        }
    )
    peak_slots = frozenset(days.index(day) for day, _peak in peaks if day in days)
    chart = chart_svg(
        title=_("Daily active users of %(app)s, %(period)s") % {"app": app_name, "period": period},
        labels=[day.strftime("%m-%d") for day in days],
        bars=[
            BarSeries(
                name=_("DAU"), values=[dau_by_day.get(day) for day in days], marked=peak_slots
            )
        ],
        rules=[
            Rule(value=level, label=_("%(dau)s DAU") % {"dau": f"{level:,}"})
            for level in thresholds
        ],
        value_text=_dau_text,
        label_every=5,
    )
    return UsageChart(app_key=app_key, app_name=app_name, chart=chart, peaks=peaks)


@compiled_read
def _month_dau(*, customer_id: int, first_day: dt.date, last_day: dt.date) -> QuerySet:
    return DailyUsage.objects.filter(
        application__customer_id=customer_id, day__gte=first_day, day__lte=last_day
    ).values_list("application__app_key", "day", "dau")


def usage_charts_for_lines(
    *,
    customer_id: int,
    period: Period,
    lines: Sequence,
    dau_by_app: dict[str, dict[dt.date, int]] | None = None,
    book: PriceBook | None = None,
) -> list[UsageChart]:
    """A chart per application with a DAU line among `lines` (invoice lines or priced lines),
    in the lines' order: one query for the month's usage, the price book from the cache.
    `dau_by_app` (app_key -> {day: DAU}) and `book`: the month's usage and prices when the
    caller has them already (the estimate's rating read them)."""
    dau_lines = [line for line in lines if line.category == DAU_FEE]
    if not dau_lines:
        return []
    usage: dict[str, dict[dt.date, int]] = defaultdict(dict)
    if dau_by_app is None:
        rows = _month_dau(customer_id=customer_id, first_day=period.start, last_day=period.end)
        for app_key, day, dau in rows:
            usage[app_key][day] = dau
    else:
        usage.update(dau_by_app)
    if book is None:
        book = cached_price_book(period=period)
    segments: dict[str, list[tuple[str, int | None, dt.date | None]]] = defaultdict(list)
    names: dict[str, str] = {}
    for line in dau_lines:
        segments[line.app_key].append((line.plan_code, line.peak_dau, line.peak_day))
        names.setdefault(line.app_key, line.app_name)
    return [
        usage_chart(
            app_key=key,
            app_name=names[key],
            period=period,
            dau_by_day=usage[key],
            segments=segments[key],
            book=book,
        )  # fmt: skip
        for key in names
    ]


# --- money over months ----------------------------------------------------------------------


def _month_start(period: Period) -> dt.datetime:
    return start_of_day(period.start)


def _period_of(moment: dt.datetime | dt.date) -> Period:
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(BILLING_TZ)
    return Period(moment.year, moment.month)


def balance_history_chart(*, customer_id: int, today: dt.date, months: int = MONTHS) -> Chart:
    """The balance at each month's end (today for this month) with the money paid in and taken
    out in that month: one grouped query over the customer's ledger."""
    periods = months_ending(Period.containing(today), months)
    positive = Q(amount__gt=0)
    rows = (
        LedgerEntry.objects.filter(customer_id=customer_id)
        .annotate(month=TruncMonth("created_at", tzinfo=BILLING_TZ))
        .values("month")
        .annotate(paid_in=Sum("amount", filter=positive), taken_out=Sum("amount", filter=~positive))
        .order_by()
    )
    paid_in: dict[Period, Decimal] = {}
    taken_out: dict[Period, Decimal] = {}
    opening = Decimal("0.00")
    for row in rows:
        period = _period_of(row["month"])
        money_in, money_out = row["paid_in"] or Decimal(0), row["taken_out"] or Decimal(0)
        if period < periods[0]:
            opening += money_in + money_out
        else:
            paid_in[period], taken_out[period] = money_in, money_out
    balances, running = [], opening
    for period in periods:
        running += paid_in.get(period, Decimal(0)) + taken_out.get(period, Decimal(0))
        balances.append(running)
    return chart_svg(
        title=_("Balance over the last %(months)s months") % {"months": months},
        labels=[str(period) for period in periods],
        bars=[
            BarSeries(
                name=_("Deposits and credits"),
                values=[paid_in.get(period, Decimal(0)) for period in periods],
                css="in",
            ),
            BarSeries(
                name=_("Debits"),
                values=[taken_out.get(period, Decimal(0)) for period in periods],
                css="out",
            ),
        ],
        lines=[LineSeries(name=_("Balance at month end"), values=balances)],
        value_text=_money_text,
        label_every=2,
    )


# --- the finance dashboard ------------------------------------------------------------------


def billed_revenue_chart(*, today: dt.date, months: int = MONTHS) -> Chart:
    """Invoice totals issued per billing period, the last `months` periods before this one."""
    periods = months_ending(Period.containing(today).previous(), months)
    totals = dict(
        Invoice.objects.filter(
            status__in=Invoice.ISSUED_STATES,
            period__gte=periods[0].start,
            period__lte=periods[-1].start,
        )
        .values("period")
        .annotate(billed=Sum("total"))
        .order_by()
        .values_list("period", "billed")
    )
    return chart_svg(
        title=_("Billed revenue by month"),
        labels=[str(period) for period in periods],
        bars=[
            BarSeries(
                name=_("Invoiced"),
                values=[totals.get(period.start, Decimal(0)) for period in periods],
            )
        ],
        value_text=_money_text,
        label_every=2,
    )


@dataclass(frozen=True)
class BalancesOverTime:
    arrears: Chart
    prepaid: Chart
    prepaid_now: Decimal


def balances_over_time(*, today: dt.date, months: int = MONTHS) -> BalancesOverTime:
    """At each month's end (today for this month): how many customers had a negative balance,
    and the prepaid money held (the positive balances summed). One query: a balance column per
    month end per customer, aggregated by the database."""
    periods = months_ending(Period.containing(today), months)
    ends = [_month_start(period.next()) for period in periods]
    money: DecimalField[Decimal, Decimal] = DecimalField(max_digits=18, decimal_places=2)
    per_customer = LedgerEntry.objects.values("customer_id").annotate(
        **{
            f"b{index}": Sum("amount", filter=Q(created_at__lt=end), default=Decimal(0))
            for index, end in enumerate(ends)
        }
    )
    totals = per_customer.aggregate(
        **{
            f"arrears{index}": Count("customer_id", filter=Q(**{f"b{index}__lt": 0}))
            for index in range(len(ends))
        },
        **{
            f"held{index}": Sum(
                Case(When(**{f"b{index}__gt": 0}, then=f"b{index}"), default=Decimal(0)),
                output_field=money,
            )
            for index in range(len(ends))
        },
    )
    labels = [str(period) for period in periods]
    arrears = [totals[f"arrears{index}"] or 0 for index in range(len(ends))]
    held = [totals[f"held{index}"] or Decimal(0) for index in range(len(ends))]
    return BalancesOverTime(
        arrears=chart_svg(
            title=_("Customers in arrears at each month end"),
            labels=labels,
            lines=[LineSeries(name=_("Customers in arrears"), values=arrears, css="bad")],
            value_text=_dau_text,
            label_every=2,
        ),
        prepaid=chart_svg(
            title=_("Total prepaid balance at each month end"),
            labels=labels,
            lines=[LineSeries(name=_("Prepaid balance"), values=held)],
            value_text=_money_text,
            label_every=2,
        ),
        prepaid_now=held[-1],
    )


def usage_month_chart(*, application: Application, month: UsageMonth) -> UsageChart:
    """The usage page's chart: the month's DAU with the billed peak of each plan segment (the
    rating inputs above) and the block thresholds of the period's price book."""
    return usage_chart(
        app_key=application.app_key,
        app_name=application.name,
        period=month.period,
        dau_by_day={day.day: day.dau for day in month.days if day.dau is not None},
        segments=[(s.plan_code, s.peak_dau, s.peak_day) for s in month.segments],
        book=cached_price_book(period=month.period),
    )

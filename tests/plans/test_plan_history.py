"""Invariants of the plan and add-on history under any sequence of decisions."""

import datetime as dt

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billingsite.clock import Period
from invoices.selectors import rate_customer_period
from plans.models import AddOnChange, PlanChange
from plans.selectors import price_book_for_period
from plans.services import SubscriptionError, addon_end, addon_set, plan_change_request
from plans.timeline import addon_history, plan_history
from tests.factories import ApplicationFactory, deposit
from tests.hypothesis_budget import examples

NOW = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CREATED = dt.date(2026, 10, 1)

decision = st.one_of(
    st.tuples(
        st.just("plan"), st.sampled_from(["free", "premium", "ultimate"]), st.integers(0, 75)
    ),
    st.tuples(
        st.just("addon"),
        st.sampled_from(["chatroom_keepalive", "desktop_pc", "ultragroup_storage_extension"]),
        st.integers(0, 75),
        st.integers(1, 3),
    ),
    st.tuples(
        st.just("end"),
        st.sampled_from(["chatroom_keepalive", "desktop_pc", "ultragroup_storage_extension"]),
        st.integers(0, 75),
    ),
)


def apply(application, step) -> None:
    day = CREATED + dt.timedelta(days=step[2])
    try:
        if step[0] == "plan":
            plan_change_request(
                application=application, plan_code=step[1], effective_date=day, now=NOW
            )
        elif step[0] == "addon":
            quantity = 1 if step[1] != "ultragroup_storage_extension" else step[3]
            addon_set(
                application=application,
                addon_code=step[1],
                quantity=quantity,
                effective_date=day,
                now=NOW,
            )
        else:
            addon_end(application=application, addon_code=step[1], effective_date=day, now=NOW)
    except SubscriptionError:
        pass  # a refusal is a valid outcome; the invariants must hold either way


@pytest.mark.django_db
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(decision, min_size=1, max_size=8))
def test_history_stays_contiguous_and_never_bills_an_unavailable_addon(price_book, steps):
    with transaction.atomic():
        application = ApplicationFactory(plan="free", created_on=CREATED)
        deposit(application.customer, "8000.00")
        for step in steps:
            apply(application, step)

        plans = plan_history(application_ids=[application.pk])[application.pk]
        assert plans[0].first_day == CREATED
        for earlier, later in zip(plans, plans[1:], strict=False):
            assert earlier.last_day + dt.timedelta(days=1) == later.first_day
            assert earlier.code != later.code, "no row repeats the plan before it"
        assert plans[-1].last_day is None
        live_days = list(
            PlanChange.objects.filter(
                application=application, cancelled_at__isnull=True
            ).values_list("effective_date", flat=True)
        )
        assert len(live_days) == len(set(live_days))

        ranks = {"free": 0, "premium": 10, "ultimate": 20}
        for earlier, later in zip(plans, plans[1:], strict=False):
            if ranks[later.code] < ranks[earlier.code]:
                assert later.first_day.day == 1, "downgrades start on a 1st"

        book = price_book_for_period(period=Period(2026, 10))
        for row in addon_history(application_ids=[application.pk]).get(application.pk, []):
            day = row.first_day
            end = row.last_day or dt.date(2027, 1, 31)
            while day <= end:
                plan = next(
                    p
                    for p in plans
                    if p.first_day <= day and (p.last_day is None or day <= p.last_day)
                )
                assert book.is_available(row.code, plan.code), (row, plan, day)
                day += dt.timedelta(days=1)
        assert not AddOnChange.objects.filter(
            application=application, cancelled_at__isnull=True, quantity__lt=0
        ).exists()

        # The rating engine accepts every month of the history.
        for period in (Period(2026, 10), Period(2026, 11), Period(2026, 12)):
            rate_customer_period(customer=application.customer, period=period)
        transaction.set_rollback(True)

"""Plan changes, add-ons and dedicated contracts through plans.services."""

import datetime as dt
from decimal import Decimal

import pytest
from moneyed import Money

from accounts.models import Customer
from billingsite.clock import Period
from invoices.documents.invoiced_months import invoice_kept
from invoices.models import Invoice
from invoices.selectors import rate_customer_period
from plans.models import AddOnChange, DedicatedContract, PlanChange, PlanPrice
from plans.services import (
    InsufficientDeposit,
    SubscriptionError,
    addon_end,
    addon_set,
    contract_add,
    plan_change_request,
)
from plans.timeline import addon_history, plan_history
from tests.factories import ApplicationFactory, deposit, usage

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
# History that starts on the 1st is decided on the 1st: nothing takes effect before today.
ON_OCT_1 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
OCT_1, OCT_16, OCT_20, NOV_1 = (
    dt.date(2026, 10, 1),
    dt.date(2026, 10, 16),
    dt.date(2026, 10, 20),
    dt.date(2026, 11, 1),
)

pytestmark = pytest.mark.usefixtures("price_book")


def app_on(plan: str = "free", balance: str | None = None, created_on=dt.date(2026, 9, 1)):
    application = ApplicationFactory(plan=plan, created_on=created_on)
    if balance:
        deposit(application.customer, balance)
    return application


def history(application) -> list[tuple[str, dt.date, dt.date | None]]:
    rows = plan_history(application_ids=[application.pk]).get(application.pk, [])
    return [(row.code, row.first_day, row.last_day) for row in rows]


def addons(application) -> list[tuple[str, int, dt.date, dt.date | None]]:
    rows = addon_history(application_ids=[application.pk]).get(application.pk, [])
    return sorted((row.code, row.quantity, row.first_day, row.last_day) for row in rows)


def counts() -> tuple[int, int, int, int]:
    return (
        PlanChange.objects.count(),
        PlanChange.objects.filter(cancelled_at__isnull=False).count(),
        AddOnChange.objects.count(),
        AddOnChange.objects.filter(cancelled_at__isnull=False).count(),
    )


def refused(code: str, call, **kwargs) -> SubscriptionError:
    before = counts()
    with pytest.raises(SubscriptionError) as info:
        call(**kwargs, now=NOW)
    assert info.value.code == code, info.value.message
    assert counts() == before, "a refusal must change nothing"
    return info.value


# --- upgrades ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("from_plan", "to_plan", "minimum"),
    [
        ("free", "premium", "6000.00"),
        ("free", "ultimate", "8000.00"),
        ("premium", "ultimate", "8000.00"),
    ],
)
def test_upgrade_needs_the_minimum_deposit(from_plan, to_plan, minimum):
    application = app_on(from_plan, balance=str(Decimal(minimum) - Decimal("0.01")))
    error = refused(
        "insufficient_deposit",
        plan_change_request,
        application=application,
        plan_code=to_plan,
        effective_date=OCT_16,
    )
    assert isinstance(error, InsufficientDeposit)
    assert error.required == Decimal(minimum)
    assert error.balance == Decimal(minimum) - Decimal("0.01")
    assert "2026-10-16" in error.message and minimum in error.message

    deposit(application.customer, "0.01")
    result = plan_change_request(
        application=application, plan_code=to_plan, effective_date=OCT_16, now=NOW
    )
    assert (result.kind, result.effective_date, result.created) == ("upgrade", OCT_16, True)
    assert result.change.plan.code == to_plan
    assert history(application) == [
        (from_plan, dt.date(2026, 9, 1), dt.date(2026, 10, 15)),
        (to_plan, OCT_16, None),
    ]


@pytest.mark.django_db
def test_activation_on_the_16th_of_a_30_day_month_is_billed_pro_rata():
    # Worked example 6, end to end through the service and the rating engine.
    application = app_on("free", balance="6000.00")
    plan_change_request(
        application=application,
        plan_code="premium",
        effective_date=dt.date(2026, 11, 16),
        now=NOW,
    )
    usage(application, dt.date(2026, 11, 20), dau=5000)
    rated = rate_customer_period(customer=application.customer, period=Period(2026, 11))
    assert rated.total == Decimal("3000.00")


@pytest.mark.django_db
def test_minimum_deposit_comes_from_the_price_book_of_the_effective_month():
    application = app_on("free", balance="6500.00")
    premium = PlanPrice.objects.get(plan__code="premium")
    PlanPrice.objects.create(
        plan=premium.plan,
        valid_from=dt.date(2026, 12, 1),
        minimum_deposit=Money("7000.00", "CNY"),
        dau_base_fee=premium.dau_base_fee,
        dau_block_price=premium.dau_block_price,
    )
    error = refused(
        "insufficient_deposit",
        plan_change_request,
        application=application,
        plan_code="premium",
        effective_date=dt.date(2026, 12, 5),
    )
    assert error.required == Decimal("7000.00")
    result = plan_change_request(
        application=application, plan_code="premium", effective_date=dt.date(2026, 11, 20), now=NOW
    )
    assert result.effective_date == dt.date(2026, 11, 20)


@pytest.mark.django_db
def test_repeating_an_upgrade_records_it_once():
    application = app_on("free", balance="6000.00")
    first = plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_16, now=NOW
    )
    second = plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_16, now=NOW
    )
    assert second.created is False and second.change.pk == first.change.pk
    assert PlanChange.objects.filter(application=application).count() == 2


@pytest.mark.django_db
def test_upgrade_on_the_creation_day_replaces_the_free_start():
    application = app_on("free", balance="6000.00", created_on=OCT_16)
    plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_16, now=NOW
    )
    assert history(application) == [("premium", OCT_16, None)]
    free_row = PlanChange.objects.get(application=application, plan__code="free")
    assert free_row.cancelled_at == NOW


# --- downgrades ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("from_plan", "to_plan"), [("premium", "free"), ("ultimate", "free"), ("ultimate", "premium")]
)
def test_downgrade_takes_effect_on_the_first_of_next_month(from_plan, to_plan):
    application = app_on(from_plan)
    result = plan_change_request(
        application=application, plan_code=to_plan, effective_date=OCT_16, now=NOW
    )
    assert (result.kind, result.requested_date, result.effective_date) == (
        "downgrade",
        OCT_16,
        NOV_1,
    )
    assert result.change.requested_date == OCT_16
    assert history(application) == [
        (from_plan, dt.date(2026, 9, 1), dt.date(2026, 10, 31)),
        (to_plan, NOV_1, None),
    ]


@pytest.mark.django_db
def test_downgrade_asked_for_a_first_takes_effect_that_day_and_needs_no_deposit():
    application = app_on("ultimate")
    result = plan_change_request(
        application=application, plan_code="premium", effective_date=NOV_1, now=NOW
    )
    assert result.effective_date == NOV_1
    assert history(application)[-1] == ("premium", NOV_1, None)


@pytest.mark.django_db
def test_downgrade_in_december_moves_to_january():
    application = app_on("premium")
    result = plan_change_request(
        application=application, plan_code="free", effective_date=dt.date(2026, 12, 31), now=NOW
    )
    assert result.effective_date == dt.date(2027, 1, 1)


# --- a new decision cancels pending ones ---------------------------------------------------


@pytest.mark.django_db
def test_keeping_the_current_plan_cancels_a_pending_downgrade():
    application = app_on("premium")
    downgrade = plan_change_request(
        application=application, plan_code="free", effective_date=OCT_16, now=NOW
    ).change
    later = NOW + dt.timedelta(days=4)
    result = plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_20, now=later
    )
    assert (result.kind, result.created) == ("unchanged", False)
    assert [c.pk for c in result.cancelled_changes] == [downgrade.pk]
    downgrade.refresh_from_db()
    assert downgrade.cancelled_at == later
    assert history(application) == [("premium", dt.date(2026, 9, 1), None)]


@pytest.mark.django_db
def test_upgrade_cancels_changes_at_or_after_its_date():
    application = app_on("premium", balance="8000.00")
    plan_change_request(application=application, plan_code="free", effective_date=OCT_16, now=NOW)
    result = plan_change_request(
        application=application, plan_code="ultimate", effective_date=OCT_20, now=NOW
    )
    assert [c.plan.code for c in result.cancelled_changes] == ["free"]
    assert history(application) == [
        ("premium", dt.date(2026, 9, 1), dt.date(2026, 10, 19)),
        ("ultimate", OCT_20, None),
    ]


@pytest.mark.django_db
def test_a_later_downgrade_replaces_a_pending_one_on_the_same_first():
    application = app_on("ultimate")
    plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_16, now=NOW
    )
    plan_change_request(application=application, plan_code="free", effective_date=OCT_20, now=NOW)
    assert history(application) == [
        ("ultimate", dt.date(2026, 9, 1), dt.date(2026, 10, 31)),
        ("free", NOV_1, None),
    ]
    assert PlanChange.objects.filter(cancelled_at__isnull=False).count() == 1


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_date_before_the_application_existed_is_refused():
    application = app_on("free", balance="9000.00", created_on=OCT_16)
    error = refused(
        "before_application_created",
        plan_change_request,
        application=application,
        plan_code="premium",
        effective_date=dt.date(2026, 10, 15),
    )
    assert "2026-10-15" in error.message and "2026-10-16" in error.message
    assert error.field == "effective_date"


@pytest.mark.django_db
def test_unknown_plan_is_refused():
    application = app_on("free", balance="9000.00")
    error = refused(
        "unknown_plan",
        plan_change_request,
        application=application,
        plan_code="platinum",
        effective_date=OCT_16,
    )
    assert error.field == "plan"


def issued_invoice(customer: Customer, period: dt.date) -> Invoice:
    invoice = Invoice.objects.create(
        customer=customer,
        period=period,
        status=Invoice.Status.ISSUED,
        number=f"INV-2026-{period.month:06d}",
        customer_name=customer.name,
        rated_at=NOW,
        issued_at=NOW,
        issue_date=NOW.date(),
    )
    invoice_kept(invoice)
    return invoice


@pytest.mark.django_db
def test_changes_inside_an_invoiced_month_are_refused():
    application = app_on("free", balance="9000.00")
    issued_invoice(application.customer, dt.date(2026, 9, 1))
    error = refused(
        "month_invoiced",
        plan_change_request,
        application=application,
        plan_code="premium",
        effective_date=dt.date(2026, 9, 20),
    )
    assert "INV-2026-000009" in error.message
    refused(
        "month_invoiced",
        addon_end,
        application=application,
        addon_code="chatroom_keepalive",
        effective_date=dt.date(2026, 9, 30),
    )
    # October is open.
    assert plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_1, now=ON_OCT_1
    ).created


# --- add-ons -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", True, None])
def test_addon_quantity_must_be_a_whole_number_of_at_least_one(quantity):
    application = app_on("premium")
    refused(
        "invalid_quantity",
        addon_set,
        application=application,
        addon_code="sensitive_words",
        quantity=quantity,
        effective_date=OCT_16,
    )


@pytest.mark.django_db
def test_switch_addon_quantity_is_one():
    application = app_on("premium")
    refused(
        "invalid_quantity",
        addon_set,
        application=application,
        addon_code="chatroom_keepalive",
        quantity=2,
        effective_date=OCT_16,
    )


@pytest.mark.django_db
def test_unknown_addon_is_refused():
    application = app_on("premium")
    refused(
        "unknown_addon",
        addon_set,
        application=application,
        addon_code="teleport",
        quantity=1,
        effective_date=OCT_16,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("plan", "addon"),
    [
        ("free", "chatroom_keepalive"),
        ("free", "sensitive_words"),
        ("premium", "ultragroup_storage_extension"),
    ],
)
def test_addon_not_offered_by_the_plan_is_refused_naming_plan_and_date(plan, addon):
    application = app_on(plan)
    error = refused(
        "addon_not_available",
        addon_set,
        application=application,
        addon_code=addon,
        quantity=1,
        effective_date=OCT_16,
    )
    assert addon in error.message and "2026-10-16" in error.message
    assert plan.capitalize() in error.message


@pytest.mark.django_db
def test_addon_availability_follows_the_plan_on_that_date():
    application = app_on("free", balance="6000.00")
    plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_20, now=NOW
    )
    refused(
        "addon_not_available",
        addon_set,
        application=application,
        addon_code="chatroom_keepalive",
        quantity=1,
        effective_date=dt.date(2026, 10, 19),
    )
    addon_set(
        application=application,
        addon_code="chatroom_keepalive",
        quantity=1,
        effective_date=OCT_20,
        now=NOW,
    )
    assert addons(application) == [("chatroom_keepalive", 1, OCT_20, None)]


@pytest.mark.django_db
def test_quantity_changes_and_ending_are_dated_rows():
    application = app_on("ultimate")
    addon_set(
        application=application,
        addon_code="ultragroup_storage_extension",
        quantity=2,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    addon_set(
        application=application,
        addon_code="ultragroup_storage_extension",
        quantity=3,
        effective_date=OCT_16,
        now=NOW,
    )
    ended = addon_end(
        application=application,
        addon_code="ultragroup_storage_extension",
        effective_date=NOV_1,
        now=NOW,
    )
    assert (ended.quantity, ended.effective_date) == (0, NOV_1)
    assert addons(application) == [
        ("ultragroup_storage_extension", 2, OCT_1, dt.date(2026, 10, 15)),
        ("ultragroup_storage_extension", 3, OCT_16, dt.date(2026, 10, 31)),
    ]
    # October: 2 months x 1,000 for 15 days + 3 x 1,000 for 16 days, on top of 8,000.
    rated = rate_customer_period(customer=application.customer, period=Period(2026, 10))
    assert rated.total == Decimal("8000.00") + Decimal("967.74") + Decimal("1548.39")


@pytest.mark.django_db
def test_repeating_an_addon_decision_records_it_once():
    application = app_on("premium")
    first = addon_set(
        application=application,
        addon_code="sensitive_words",
        quantity=2,
        effective_date=OCT_16,
        now=NOW,
    )
    again = addon_set(
        application=application,
        addon_code="sensitive_words",
        quantity=2,
        effective_date=OCT_16,
        now=NOW,
    )
    same_quantity_later = addon_set(
        application=application,
        addon_code="sensitive_words",
        quantity=2,
        effective_date=OCT_20,
        now=NOW,
    )
    assert first.pk == again.pk == same_quantity_later.pk
    end = addon_end(
        application=application, addon_code="sensitive_words", effective_date=NOV_1, now=NOW
    )
    assert (
        addon_end(
            application=application, addon_code="sensitive_words", effective_date=NOV_1, now=NOW
        ).pk
        == end.pk
    )
    assert AddOnChange.objects.filter(application=application).count() == 2


@pytest.mark.django_db
def test_ending_an_addon_that_is_not_active_is_refused():
    application = app_on("premium")
    error = refused(
        "addon_not_active",
        addon_end,
        application=application,
        addon_code="sensitive_words",
        effective_date=OCT_16,
    )
    # Today is used, so an end asked for today is judged from tomorrow.
    assert "2026-10-17" in error.message


@pytest.mark.django_db
def test_ending_before_a_pending_start_cancels_it():
    application = app_on("premium")
    start = addon_set(
        application=application, addon_code="desktop_pc", quantity=1, effective_date=NOV_1, now=NOW
    )
    addon_end(application=application, addon_code="desktop_pc", effective_date=OCT_20, now=NOW)
    start.refresh_from_db()
    assert start.cancelled_at == NOW
    assert addons(application) == []


# --- plan changes end add-ons the new plan lacks -------------------------------------------


@pytest.mark.django_db
def test_downgrade_ends_addons_the_new_plan_lacks_on_the_same_day():
    application = app_on("ultimate")
    addon_set(
        application=application,
        addon_code="ultragroup_storage_extension",
        quantity=2,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    addon_set(
        application=application,
        addon_code="desktop_pc",
        quantity=1,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    result = plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_16, now=NOW
    )
    assert result.ended_addons == ["ultragroup_storage_extension"]
    assert addons(application) == [
        ("desktop_pc", 1, OCT_1, None),
        ("ultragroup_storage_extension", 2, OCT_1, dt.date(2026, 10, 31)),
    ]


@pytest.mark.django_db
def test_downgrade_to_free_ends_every_addon_and_cancelling_it_restores_them():
    application = app_on("premium")
    addon_set(
        application=application,
        addon_code="chatroom_keepalive",
        quantity=1,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    addon_set(
        application=application,
        addon_code="sensitive_words",
        quantity=2,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    # A pending start on a day the new plan will not offer it is cancelled too.
    addon_set(
        application=application,
        addon_code="desktop_pc",
        quantity=1,
        effective_date=dt.date(2026, 11, 5),
        now=NOW,
    )
    result = plan_change_request(
        application=application, plan_code="free", effective_date=OCT_16, now=NOW
    )
    assert result.ended_addons == ["chatroom_keepalive", "desktop_pc", "sensitive_words"]
    assert addons(application) == [
        ("chatroom_keepalive", 1, OCT_1, dt.date(2026, 10, 31)),
        ("sensitive_words", 2, OCT_1, dt.date(2026, 10, 31)),
    ]
    # November on Free bills nothing, and the rating engine accepts the history.
    assert rate_customer_period(customer=application.customer, period=Period(2026, 11)).total == 0

    plan_change_request(
        application=application, plan_code="premium", effective_date=OCT_20, now=NOW
    )
    assert addons(application) == [
        ("chatroom_keepalive", 1, OCT_1, None),
        ("sensitive_words", 2, OCT_1, None),
    ]


@pytest.mark.django_db
def test_addon_added_before_a_pending_downgrade_ends_when_it_takes_effect():
    application = app_on("premium")
    plan_change_request(application=application, plan_code="free", effective_date=OCT_16, now=NOW)
    addon_set(
        application=application,
        addon_code="message_callback",
        quantity=1,
        effective_date=OCT_20,
        now=NOW,
    )
    assert addons(application) == [("message_callback", 1, OCT_20, dt.date(2026, 10, 31))]


@pytest.mark.django_db
def test_upgrade_keeps_addons_ultimate_includes():
    application = app_on("premium", balance="8000.00")
    addon_set(
        application=application,
        addon_code="chatroom_keepalive",
        quantity=1,
        effective_date=OCT_1,
        now=ON_OCT_1,
    )
    result = plan_change_request(
        application=application, plan_code="ultimate", effective_date=OCT_16, now=NOW
    )
    assert result.ended_addons == []
    rated = rate_customer_period(customer=application.customer, period=Period(2026, 10))
    keepalive = [line for line in rated.lines if line.code == "chatroom_keepalive"]
    # 2,000 x 15/31 on Premium, then included (0.00) on Ultimate.
    assert [line.amount for line in keepalive] == [Decimal("967.74"), Decimal("0.00")]


# --- dedicated contracts -------------------------------------------------------------------


@pytest.mark.django_db
def test_contract_is_dated_and_priced_instead_of_the_table():
    application = app_on("premium")
    contract = contract_add(
        application=application,
        monthly_fee=Decimal("50000.00"),
        first_day=OCT_16,
        last_day=dt.date(2027, 10, 15),
        reference="DS-2026-007",
        now=NOW,
    )
    assert (contract.first_day, contract.last_day, contract.monthly_fee.amount) == (
        OCT_16,
        dt.date(2027, 10, 15),
        Decimal("50000.00"),
    )
    usage(application, OCT_20, dau=5000, delivered_messages=3_000_000)
    rated = rate_customer_period(customer=application.customer, period=Period(2026, 10))
    assert [line.code for line in rated.lines] == ["dedicated_service", "premium"]
    # 50,000 x 16/31 for the contract days; the table bills October 1-15: 6,000 x 15/31.
    assert [line.amount for line in rated.lines] == [Decimal("25806.45"), Decimal("2903.23")]
    assert rated.total == Decimal("28709.68")
    # High volume on the 20th, but days 1-15 had no contract: finance reviews the month.
    assert len(rated.hold_reasons) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"monthly_fee": Decimal("0")}, "invalid_amount"),
        ({"monthly_fee": Decimal("-5")}, "invalid_amount"),
        ({"monthly_fee": Decimal("1.005")}, "invalid_amount"),
        ({"monthly_fee": Money("100", "USD")}, "invalid_amount"),
        ({"last_day": dt.date(2026, 10, 1)}, "invalid_dates"),
        ({"first_day": dt.date(2026, 8, 31)}, "before_application_created"),
        ({"first_day": dt.date(2026, 12, 1)}, "contract_overlap"),
    ],
)
def test_contract_refusals(kwargs, code):
    application = app_on("premium")
    contract_add(application=application, monthly_fee=Decimal("1000"), first_day=NOV_1, now=NOW)
    arguments = {"application": application, "monthly_fee": Decimal("50000"), "first_day": OCT_16}
    before = DedicatedContract.objects.count()
    with pytest.raises(SubscriptionError) as info:
        contract_add(**{**arguments, **kwargs}, now=NOW)
    assert info.value.code == code
    assert DedicatedContract.objects.count() == before

"""The price book in the back-office: a change of price is a new dated row; rows in force are
read-only; every save is in the history with who and when; bad input is a form error."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from accounts import roles
from billingsite.clock import Period
from plans.admin.catalog import VatRateAdmin
from plans.models import AddOn, AddOnPrice, Plan, PlanPrice, VatRate
from plans.selectors import price_book_for_period
from tests.admin.conftest import as_user
from tests.conftest import postgres_only
from tests.factories import StaffFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("price_book")]

TODAY = dt.date(2026, 11, 2)
PREMIUM_PRICE = {
    "minimum_deposit_0": "6000.00",
    "minimum_deposit_1": "CNY",
    "dau_base_fee_0": "6600.00",
    "dau_base_fee_1": "CNY",
    "included_dau": "10000",
    "dau_block_size": "10000",
    "dau_block_price_0": "3300.00",
    "dau_block_price_1": "CNY",
    "note": "",
}


def plan_form(plan: Plan, *, new_rows: list[dict]) -> dict:
    """The plan's change form: the existing price rows as they are, plus new rows."""
    in_force = list(plan.prices.filter(valid_from__lte=TODAY).order_by("-valid_from"))
    future = list(plan.prices.filter(valid_from__gt=TODAY).order_by("valid_from"))
    data = {
        "name": plan.name,
        "activation": plan.activation,
        "rank": plan.rank,
        "daily_message_limit": plan.daily_message_limit,
        "notes": plan.notes,
        # The read-only inline of prices in force, then the editable one ("prices-2").
        "prices-TOTAL_FORMS": len(in_force),
        "prices-INITIAL_FORMS": len(in_force),
        "prices-MIN_NUM_FORMS": 0,
        "prices-MAX_NUM_FORMS": 1000,
        "prices-2-TOTAL_FORMS": len(future) + len(new_rows),
        "prices-2-INITIAL_FORMS": len(future),
        "prices-2-MIN_NUM_FORMS": 0,
        "prices-2-MAX_NUM_FORMS": 1000,
    }
    if plan.supports_ultragroups:
        data["supports_ultragroups"] = "on"
    for index, price in enumerate(in_force):
        data[f"prices-{index}-id"] = price.pk
        data[f"prices-{index}-plan"] = plan.pk
    for index, price in enumerate(future):
        data[f"prices-2-{index}-id"] = price.pk
        data[f"prices-2-{index}-plan"] = plan.pk
    for offset, row in enumerate(new_rows, start=len(future)):
        data.update({f"prices-2-{offset}-{key}": value for key, value in row.items()})
        data[f"prices-2-{offset}-plan"] = plan.pk
    return data


def test_manager_adds_a_dated_price_through_the_plan_page(client, manager, frozen_now):
    premium = Plan.objects.get(code="premium")
    as_user(client, manager)
    url = reverse("admin:plans_plan_change", args=[premium.pk])
    response = client.post(
        url, plan_form(premium, new_rows=[{"valid_from": "2027-01-01", **PREMIUM_PRICE}])
    )
    assert response.status_code == 302, form_errors_of_inline(response)
    assert premium.prices.count() == 2
    # December is billed at the old price, January at the new one.
    assert price_book_for_period(period=Period(2026, 12)).plan("premium").dau_base_fee == Decimal(
        "6000.00"
    )
    january = price_book_for_period(period=Period(2027, 1)).plan("premium")
    assert (january.dau_base_fee, january.dau_block_price) == (
        Decimal("6600.00"),
        Decimal("3300.00"),
    )
    record = PlanPrice.history.get(valid_from="2027-01-01", history_type="+")
    assert record.history_user == manager
    page = client.get(url).content.decode()
    assert "manager" in page and "Price change history" in page


def form_errors_of_inline(response):
    if response.status_code != 200:
        return response.status_code
    return [
        form.errors
        for inline in response.context["inline_admin_formsets"]
        for form in inline.formset.forms
    ]


def test_a_price_in_force_cannot_be_edited(client, manager, frozen_now):
    premium = Plan.objects.get(code="premium")
    price = premium.prices.get()
    as_user(client, manager)
    data = plan_form(premium, new_rows=[])
    data.update(
        {
            "prices-0-valid_from": "2025-01-01",
            "prices-0-dau_base_fee_0": "1.00",
            "prices-0-dau_base_fee_1": "CNY",
        }
    )
    response = client.post(reverse("admin:plans_plan_change", args=[premium.pk]), data)
    assert response.status_code == 302
    # The standalone page shows it read-only and ignores a post.
    url = reverse("admin:plans_planprice_change", args=[price.pk])
    assert 'name="dau_base_fee_0"' not in client.get(url).content.decode()
    refused = client.post(url, {"valid_from": "2025-01-01", **PREMIUM_PRICE, "plan": premium.pk})
    assert refused.status_code == 403
    price.refresh_from_db()
    assert price.dau_base_fee.amount == Decimal("6000.00")
    assert PlanPrice.history.filter(id=price.pk).count() == 1


def test_a_future_price_can_be_corrected_and_the_change_is_audited(client, manager, frozen_now):
    premium = Plan.objects.get(code="premium")
    as_user(client, manager)
    add = client.post(
        reverse("admin:plans_planprice_add"),
        {"plan": premium.pk, "valid_from": "2027-01-01", **PREMIUM_PRICE},
    )
    assert add.status_code == 302
    future = PlanPrice.objects.get(valid_from="2027-01-01")
    change = client.post(
        reverse("admin:plans_planprice_change", args=[future.pk]),
        {
            "plan": premium.pk,
            "valid_from": "2027-01-01",
            **PREMIUM_PRICE,
            "dau_base_fee_0": "6500.00",
        },
    )
    assert change.status_code == 302
    future.refresh_from_db()
    assert future.dau_base_fee.amount == Decimal("6500.00")
    history = client.get(reverse("admin:plans_planprice_history", args=[future.pk]))
    assert history.status_code == 200 and "manager" in history.content.decode()
    audit = client.get(reverse("admin:audit") + "?kind=price&user=manager").content.decode()
    assert "dau_base_fee: ¥6,600.00 → ¥6,500.00" in audit


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"valid_from": "2027-01-15"}, "valid_from", "first day of a month"),
        ({"valid_from": "2027-02-01"}, "__all__", "already exists"),
        ({"valid_from": "2026-11-01"}, "valid_from", "1st of a future month"),
        ({"valid_from": "next year"}, "valid_from", "Enter a valid date."),
        ({"dau_base_fee_0": "-1.00"}, "dau_base_fee", "cannot be negative"),
        ({"dau_block_price_0": "abc"}, "dau_block_price", "Enter a number."),
        ({"dau_block_size": "0"}, "__all__", "plan_block_size_positive"),
        ({"included_dau": "-5"}, "included_dau", "greater than or equal to 0"),
    ],
)
def test_bad_price_input_is_a_form_error(client, manager, frozen_now, changes, field, message):
    premium = Plan.objects.get(code="premium")
    existing = premium.prices.get()
    existing.pk, existing.valid_from = None, dt.date(2027, 2, 1)
    existing.save()
    data = {"plan": premium.pk, "valid_from": "2027-01-01", **PREMIUM_PRICE, **changes}
    response = as_user(client, manager).post(reverse("admin:plans_planprice_add"), data)
    assert response.status_code == 200
    errors = {k: list(v) for k, v in response.context["adminform"].form.errors.items()}
    assert any(message in text for text in errors.get(field, [])), errors
    assert PlanPrice.objects.count() == 4


def test_addon_price_included_must_be_zero(client, manager, frozen_now):
    addon = AddOn.objects.get(code="desktop_pc")
    response = as_user(client, manager).post(
        reverse("admin:plans_addonprice_add"),
        {
            "addon": addon.pk,
            "plan": Plan.objects.get(code="premium").pk,
            "valid_from": "2027-01-01",
            "availability": "included",
            "unit_price_0": "100.00",
            "unit_price_1": "CNY",
        },
    )
    assert response.status_code == 200
    assert not AddOnPrice.objects.filter(valid_from="2027-01-01").exists()


def test_history_cannot_revert_a_price(client, manager, frozen_now):
    price = PlanPrice.objects.get(plan__code="premium")
    record = PlanPrice.history.get(id=price.pk)
    url = reverse("admin:plans_planprice_simple_history", args=[price.pk, record.history_id])
    as_user(client, manager)
    assert client.get(url).status_code == 200
    assert client.post(url, {"valid_from": "2025-01-01", **PREMIUM_PRICE}).status_code == 403


def test_price_rows_are_never_deleted(client, manager, frozen_now):
    price = PlanPrice.objects.get(plan__code="premium")
    response = as_user(client, manager).post(
        reverse("admin:plans_planprice_delete", args=[price.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert PlanPrice.objects.filter(pk=price.pk).exists()


def test_a_tampered_read_only_price_formset_is_not_a_server_error(client, manager, frozen_now):
    """A post that adds rows to the read-only inline of prices in force (its management form
    edited by hand) shows the page again or ignores them; it never fails rendering a price
    that does not exist."""
    premium = Plan.objects.get(code="premium")
    data = plan_form(premium, new_rows=[{"valid_from": "2026-12-15", **PREMIUM_PRICE}])
    data["prices-TOTAL_FORMS"] = data["prices-INITIAL_FORMS"] + 1
    data.update({f"prices-1-{key}": value for key, value in PREMIUM_PRICE.items()})
    response = as_user(client, manager).post(
        reverse("admin:plans_plan_change", args=[premium.pk]), data
    )
    assert response.status_code == 200
    assert "first day of a month" in str(form_errors_of_inline(response))
    assert premium.prices.count() == 1
    # Without another error the post saves the plan and ignores the added row.
    data = plan_form(premium, new_rows=[])
    data["prices-TOTAL_FORMS"] = data["prices-INITIAL_FORMS"] + 1
    data.update({f"prices-1-{key}": value for key, value in PREMIUM_PRICE.items()})
    data["prices-1-valid_from"] = "2025-01-01"
    response = client.post(reverse("admin:plans_plan_change", args=[premium.pk]), data)
    assert response.status_code == 302
    assert premium.prices.count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_managers_adding_the_same_vat_month_at_once_one_gets_a_form_error(monkeypatch):
    roles.sync_roles()
    manager = StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])
    real_save = VatRateAdmin.save_model
    raced = []

    def other_user_commits_first(self, request, obj, form, change):
        # The other manager's save of the same month commits after this form was checked.
        if not raced:
            raced.append(True)
            other = threading.Thread(target=_other_vat_rate_committed)
            other.start()
            other.join(timeout=30)
        real_save(self, request, obj, form, change)

    monkeypatch.setattr(VatRateAdmin, "save_model", other_user_commits_first)
    client = Client(raise_request_exception=True)
    client.force_login(manager)
    with freeze_time("2026-11-02 10:00:00+08:00"):
        response = client.post(
            reverse("admin:plans_vatrate_add"), {"valid_from": "2099-01-01", "rate": "0.0900"}
        )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["valid_from"] == [
        "VAT rate with this Valid from already exists."
    ]
    [row] = VatRate.objects.filter(valid_from=dt.date(2099, 1, 1))
    assert row.rate == Decimal("0.0600")


def _other_vat_rate_committed() -> None:
    try:
        VatRate.objects.create(valid_from=dt.date(2099, 1, 1), rate=Decimal("0.0600"))
    finally:
        connection.close()

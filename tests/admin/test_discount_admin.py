"""Contracted discounts in the back-office: added by a finance manager through the service's
rules, bad input is a form error that writes nothing, saved terms are read-only."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from accounts import roles
from plans import services
from plans.admin import catalog
from plans.models import Discount
from tests.admin.conftest import BILLING_DAY, as_user
from tests.conftest import postgres_only
from tests.factories import CustomerFactory, StaffFactory, discount

pytestmark = pytest.mark.django_db

ADD = reverse("admin:plans_discount_add")


def form_errors(response) -> dict:
    if response.status_code != 200:
        return {"status": [response.status_code]}
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def form(**fields) -> dict:
    data = {
        "customer": "",
        "application": "",
        "percent": "",
        "amount_off_0": "",
        "amount_off_1": "CNY",
        "first_day": "2026-11-01",
        "last_day": "",
        "reference": "CD-9",
        "notes": "",
    }
    data.update({key: str(value) for key, value in fields.items()})
    return data


def test_manager_adds_a_customer_discount(client, manager, month):
    response = as_user(client, manager).post(
        ADD, form(customer=month.beta.pk, percent="12.5", first_day="2026-10-01")
    )
    assert response.status_code == 302, form_errors(response)
    saved = Discount.objects.get()
    assert (saved.customer, saved.application, saved.percent) == (
        month.beta,
        None,
        Decimal("12.50"),
    )
    assert (saved.first_day, saved.last_day, saved.created_by) == (
        dt.date(2026, 10, 1),
        None,
        manager,
    )


def test_manager_adds_a_fixed_application_discount(client, manager, month):
    response = as_user(client, manager).post(
        ADD,
        form(application=month.alpha_app.pk, amount_off_0="500.00", last_day="2026-12-31"),
    )
    assert response.status_code == 302, form_errors(response)
    saved = Discount.objects.get()
    assert (saved.application, saved.amount_off.amount) == (month.alpha_app, Decimal("500.00"))


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"percent": "0"}, "percent", "above 0 and at most 100"),
        ({"percent": "100.5"}, "percent", "above 0 and at most 100"),
        ({"amount_off_0": "0.00"}, "amount_off", "must be positive"),
        ({"amount_off_0": "-5.00"}, "amount_off", "must be positive"),
        ({}, "percent", "either a percentage or a fixed amount"),
        ({"percent": "10", "amount_off_0": "100.00"}, "percent", "either a percentage"),
        ({"percent": "10", "last_day": "2026-10-31"}, "last_day", "is before first_day"),
        # Alpha's October is invoiced (issued): nothing may start in it.
        ({"percent": "10", "first_day": "2026-10-15"}, "first_day", "already invoiced"),
    ],
)
def test_bad_discounts_are_form_errors_that_write_nothing(
    client, manager, month, fields, field, message
):
    response = as_user(client, manager).post(ADD, form(customer=month.alpha.pk, **fields))
    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in text for text in errors.get(field, [])), errors
    assert not Discount.objects.exists()


def test_both_scopes_or_none_are_refused(client, manager, month):
    for scope in ({}, {"customer": month.beta.pk, "application": month.beta_app.pk}):
        response = as_user(client, manager).post(ADD, form(percent="10", **scope))
        assert response.status_code == 200
        assert "customer" in form_errors(response)
    assert not Discount.objects.exists()


def test_overlapping_discount_of_the_same_scope_is_refused(client, manager, month):
    discount(
        customer=month.beta,
        percent="5",
        first_day=dt.date(2026, 11, 1),
        last_day=dt.date(2026, 11, 30),
    )
    response = as_user(client, manager).post(
        ADD, form(customer=month.beta.pk, amount_off_0="100.00", first_day="2026-11-30")
    )
    assert "already a discount for the same customer" in form_errors(response)["first_day"][0]
    # Another scope (the application) may overlap: both apply.
    response = as_user(client, manager).post(
        ADD, form(application=month.beta_app.pk, amount_off_0="100.00", first_day="2026-11-30")
    )
    assert response.status_code == 302
    assert Discount.objects.count() == 2


def test_saved_terms_are_read_only_and_the_reference_may_be_fixed(client, manager, month):
    saved = discount(customer=month.beta, percent="5", first_day=dt.date(2026, 11, 1))
    url = reverse("admin:plans_discount_change", args=[saved.pk])
    response = as_user(client, manager).post(
        url, {"percent": "90", "first_day": "2026-01-01", "reference": "CD-10", "notes": "n"}
    )
    assert response.status_code == 302
    saved.refresh_from_db()
    assert (saved.percent, saved.first_day, saved.reference) == (
        Decimal("5.00"),
        dt.date(2026, 11, 1),
        "CD-10",
    )
    assert (
        as_user(client, manager).get(reverse("admin:plans_discount_changelist")).status_code == 200
    )


def test_clerks_read_discounts_but_do_not_add_them(client, clerk, month):
    assert (
        as_user(client, clerk).post(ADD, form(customer=month.beta.pk, percent="10")).status_code
        == 403
    )
    assert as_user(client, clerk).get(reverse("admin:plans_discount_changelist")).status_code == 200
    assert not Discount.objects.exists()


def test_the_audit_trail_names_who_added_a_discount(client, manager, auditor, month):
    as_user(client, manager).post(
        ADD, form(customer=month.beta.pk, amount_off_0="250.00", first_day="2026-10-01")
    )
    as_user(client, auditor)
    page = client.get(reverse("admin:audit") + "?kind=discount")
    [entry] = page.context["entries"]
    assert (entry.kind, entry.username) == ("discount", "manager")
    assert entry.subject == "Discount CD-9 for Beta Ltd (created)"
    assert "250.00" in entry.detail and "from 2026-10-01" in entry.detail


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_managers_adding_overlapping_discounts_at_once_one_gets_a_form_error(monkeypatch):
    # An earlier transactional test's flush empties auth_group; the roles come back idempotently.
    roles.sync_roles()
    customer = CustomerFactory(name="Beta Ltd")
    managers = [
        StaffFactory(username=f"manager{n}", groups=[roles.FINANCE_MANAGER]) for n in range(2)
    ]
    # Both posts have passed every check of the form's fields before either writes: the race.
    barrier = threading.Barrier(2)
    real_add = catalog.discount_add

    def add_when_both_are_checked(**terms):
        barrier.wait(timeout=10)
        return real_add(**terms)

    monkeypatch.setattr(catalog, "discount_add", add_when_both_are_checked)
    responses, failures = [], []

    def post(manager, percent) -> None:
        try:
            client = Client(raise_request_exception=True)
            client.force_login(manager)
            responses.append(
                client.post(
                    ADD, form(customer=customer.pk, percent=percent, first_day="2026-11-15")
                )
            )
        except Exception as exc:  # the 500 this test is about
            failures.append(exc)
        finally:
            connection.close()

    with freeze_time(BILLING_DAY):
        threads = [
            threading.Thread(target=post, args=(manager, percent))
            for manager, percent in zip(managers, ["10", "20"], strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert sorted(response.status_code for response in responses) == [200, 302]
    [refused] = [response for response in responses if response.status_code == 200]
    assert "already a discount for the same customer" in form_errors(refused)["first_day"][0]
    [saved] = Discount.objects.all()
    assert saved.customer_id == customer.pk


@postgres_only
def test_an_overlap_only_the_database_refuses_is_a_form_error(client, manager, month, monkeypatch):
    """The race's other path: the service's check saw no overlap (a writer that bypassed the
    lock committed after it), the database's exclusion constraint refuses the insert: the page
    shows the same form error, never a 500, and nothing more is written."""
    discount(customer=month.beta, percent="5", first_day=dt.date(2026, 11, 1))
    real, calls = services.discounts_in_effect, []

    def blind_first(**kwargs):
        calls.append(kwargs)
        return Discount.objects.none() if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "discounts_in_effect", blind_first)
    response = as_user(client, manager).post(
        ADD, form(customer=month.beta.pk, percent="10", first_day="2026-11-20")
    )
    assert form_errors(response) == {
        "first_day": [
            "there is already a discount for the same customer from 2026-11-01 to open end"
        ]
    }
    assert Discount.objects.count() == 1

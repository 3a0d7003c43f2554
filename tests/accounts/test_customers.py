"""customer_create and application_create."""

import datetime as dt

import pytest

from accounts.models import Application, Customer
from accounts.services import (
    AccountError,
    DuplicateError,
    customer_create,
)
from plans.models import PlanChange
from plans.services import application_create
from plans.timeline import plan_history
from tests.factories import CustomerFactory

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.mark.django_db
def test_customer_create_stores_the_account():
    customer = customer_create(
        external_id="console-9",
        name=" Hai Tang Ltd ",
        billing_email="ap@haitang.example.com",
        address="9 Nanjing Road",
        tax_id="913100",
        contact_name="Wang Fang",
        contact_phone="+86 21 5555 0101",
        now=NOW,
    )
    customer.refresh_from_db()
    assert (customer.external_id, customer.name, customer.tax_id, customer.contact_name) == (
        "console-9",
        "Hai Tang Ltd",
        "913100",
        "Wang Fang",
    )
    assert customer.arrears_since is None and customer.suspended_at is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "a/b"}, "external_id"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"name": ""}, "name"),
        ({"billing_email": "nope"}, "billing_email"),
        ({"tax_id": "9" * 65}, "tax_id"),
    ],
)
def test_customer_create_refuses_bad_input(kwargs, field):
    arguments = {"external_id": "ok-1", "name": "A", "billing_email": "a@b.cn", **kwargs}
    with pytest.raises(AccountError) as info:
        customer_create(**arguments, now=NOW)
    assert info.value.field == field
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_duplicate_external_id_is_refused():
    CustomerFactory(external_id="taken")
    with pytest.raises(DuplicateError) as info:
        customer_create(external_id="taken", name="B", billing_email="b@b.cn", now=NOW)
    assert (info.value.code, info.value.field) == ("duplicate", "external_id")
    assert Customer.objects.count() == 1


@pytest.mark.django_db
def test_application_starts_on_free_from_the_shanghai_date(price_book):
    customer = CustomerFactory()
    # 17:30 UTC on the 15th is already the 16th in Asia/Shanghai.
    late_utc = dt.datetime(2026, 10, 15, 17, 30, tzinfo=dt.UTC)
    application = application_create(
        customer=customer,
        app_key="k5f8w2qz9m",
        name="Lanting Chat",
        data_center="north_america",
        now=late_utc,
    )
    assert application.created_on == dt.date(2026, 10, 16)
    assert application.status == Application.Status.ACTIVE
    rows = plan_history(application_ids=[application.pk])[application.pk]
    assert [(r.code, r.first_day, r.last_day) for r in rows] == [
        ("free", dt.date(2026, 10, 16), None)
    ]
    assert PlanChange.objects.get(application=application).created_at == late_utc


@pytest.mark.django_db
def test_application_of_a_suspended_customer_starts_suspended(price_book):
    customer = CustomerFactory(suspended_at=NOW, arrears_since=dt.date(2026, 10, 1))
    application = application_create(
        customer=customer, app_key="k2", name="Two", data_center="singapore", now=NOW
    )
    assert application.status == Application.Status.SUSPENDED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"app_key": "taken"}, DuplicateError, "app_key"),
        ({"app_key": "with space"}, AccountError, "app_key"),
        ({"data_center": "beijing"}, AccountError, "data_center"),
        ({"name": " "}, AccountError, "name"),
    ],
)
def test_application_create_refusals(price_book, kwargs, error, field):
    customer = CustomerFactory()
    application_create(
        customer=customer, app_key="taken", name="First", data_center="singapore", now=NOW
    )
    arguments = {"app_key": "new", "name": "New", "data_center": "singapore", **kwargs}
    with pytest.raises(error) as info:
        application_create(customer=customer, **arguments, now=NOW)
    assert info.value.field == field
    assert Application.objects.count() == 1
    assert PlanChange.objects.count() == 1

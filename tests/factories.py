"""factory_boy factories shared by every app's tests."""

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from moneyed import Money

from accounts.mail.contacts import primary_contact_ensure
from accounts.models import Application, Customer, CustomerUser, DailyUsage, LedgerEntry
from accounts.services import promo_credit_grant, record_deposit
from plans.models import AddOn, AddOnChange, DedicatedContract, Discount, Plan, PlanChange

NOW = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))

    @factory.post_generation
    def _store_password(self, create, extracted, **kwargs):
        # set_password only hashes; this stores the hash (declared last, so it runs last).
        if create:
            self.save(update_fields=["password"])


class StaffFactory(UserFactory):
    is_staff = True


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"cust-{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n} Ltd")
    billing_email = factory.LazyAttribute(lambda c: f"billing@{c.external_id}.example.com")
    address = "1 Century Avenue, Shanghai"
    tax_id = factory.Sequence(lambda n: f"91310000{n:010d}")

    @factory.post_generation
    def billing_contact(customer, create, extracted, **kwargs):
        # As customer_create and the data migration do: the billing e-mail is a contact.
        if create:
            primary_contact_ensure(customer=customer)


class CustomerUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerUser

    user = factory.SubFactory(UserFactory)
    customer = factory.SubFactory(CustomerFactory)


class ApplicationFactory(factory.django.DjangoModelFactory):
    """An application; `plan` (a code) adds its first PlanChange on `created_on`."""

    class Meta:
        model = Application
        skip_postgeneration_save = True

    customer = factory.SubFactory(CustomerFactory)
    app_key = factory.Sequence(lambda n: f"appkey{n:06d}")
    name = factory.Sequence(lambda n: f"App {n}")
    data_center = Application.DataCenter.SINGAPORE
    created_on = dt.date(2026, 1, 1)

    @factory.post_generation
    def plan(self, create, extracted, **kwargs):
        if create:
            PlanChange.objects.create(
                application=self,
                plan=Plan.objects.get(code=extracted or "free"),
                effective_date=self.created_on,
                created_at=NOW,
            )


def plan_change(application, plan_code: str, effective_date: dt.date) -> PlanChange:
    return PlanChange.objects.create(
        application=application,
        plan=Plan.objects.get(code=plan_code),
        effective_date=effective_date,
        created_at=NOW,
    )


def addon_change(
    application, addon_code: str, quantity: int, effective_date: dt.date
) -> AddOnChange:
    return AddOnChange.objects.create(
        application=application,
        addon=AddOn.objects.get(code=addon_code),
        quantity=quantity,
        effective_date=effective_date,
        created_at=NOW,
    )


def contract(application, monthly_fee: str, first_day: dt.date, last_day=None) -> DedicatedContract:
    return DedicatedContract.objects.create(
        application=application,
        monthly_fee=Money(Decimal(monthly_fee), "CNY"),
        first_day=first_day,
        last_day=last_day,
        reference="DS-TEST",
    )


def discount(
    *,
    customer=None,
    application=None,
    percent: str | None = None,
    amount_off: str | None = None,
    first_day: dt.date,
    last_day: dt.date | None = None,
    reference: str = "",
) -> Discount:
    return Discount.objects.create(
        customer=customer,
        application=application,
        percent=None if percent is None else Decimal(percent),
        amount_off=None if amount_off is None else Money(Decimal(amount_off), "CNY"),
        first_day=first_day,
        last_day=last_day,
        reference=reference,
    )


def usage(application, day: dt.date, dau: int, delivered_messages: int = 1000) -> DailyUsage:
    return DailyUsage.objects.create(
        application=application,
        day=day,
        dau=dau,
        delivered_messages=delivered_messages,
        updated_at=NOW,
    )


def promo_grant(
    customer,
    amount: str,
    expires_on: dt.date,
    *,
    granted_at: dt.datetime = dt.datetime(
        2026, 10, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))
    ),
    reason: str = "Launch promotion",
    key: str | None = None,
) -> LedgerEntry:
    """Promotional credit granted by finance (by default on 1 October)."""
    entry, _ = promo_credit_grant(
        customer=customer,
        amount=Decimal(amount),
        reason=reason,
        expires_on=expires_on,
        granted_by=None,
        now=granted_at,
        idempotency_key=key or f"test-promo:{customer.pk}:{LedgerEntry.objects.count()}",
    )
    return entry


def deposit(customer, amount: str, key: str | None = None) -> LedgerEntry:

    entry, _ = record_deposit(
        customer=customer,
        amount=Decimal(amount),
        reference="TEST",
        idempotency_key=key or f"test-deposit:{customer.pk}:{LedgerEntry.objects.count()}",
        now=NOW,
    )
    return entry

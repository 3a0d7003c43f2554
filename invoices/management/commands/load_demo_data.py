"""`manage.py load_demo_data`: a few customers with last month's history, ready to bill.

Everything goes through the real services (customers, applications, deposits, plan and add-on
decisions, contracts, usage ingest), dated in the previous month, so `manage.py bill --period
<previous month>` then shows issued invoices, a negative balance in arrears, a held high-volume
invoice, a contract line, a pro-rata activation, a mid-month upgrade and a skipped free account.
Idempotent: customers that already exist are left as they are.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import Customer, CustomerUser
from accounts.services import customer_create, record_deposit
from accounts.usage import usage_ingest
from billingsite.clock import BILLING_TZ, Period, billing_date
from plans.models import Plan
from plans.services import addon_set, application_create, contract_add, plan_change_request


@dataclass(frozen=True)
class DemoApp:
    key: str
    name: str
    plan: str = "free"
    # Day of the month the application was created (and its plan started).
    first_day: int = 1
    peak_dau: int = 800
    addons: tuple[tuple[str, int], ...] = ()
    upgrade_to: tuple[str, int] | None = None  # (plan, day of month)
    busiest_day_messages: int | None = None
    contract_fee: str | None = None


@dataclass(frozen=True)
class DemoCustomer:
    external_id: str
    name: str
    deposit: str
    apps: tuple[DemoApp, ...] = field(default=())
    address: str = ""
    tax_id: str = ""


DEMO = (
    DemoCustomer(
        "demo-aurora",
        "Aurora Chat Ltd",
        "40000.00",
        (
            DemoApp(
                "aurora-main",
                "Aurora Messenger",
                "premium",
                peak_dau=18_500,
                addons=(("chatroom_keepalive", 1), ("sensitive_words", 2)),
            ),
            DemoApp("aurora-staging", "Aurora Staging", "free", peak_dau=120),
        ),
        address="88 Century Avenue, Pudong, Shanghai",
        tax_id="91310115MA1K4XXX06",
    ),
    DemoCustomer(
        "demo-beacon",
        "Beacon Games Co.",
        "20000.00",
        (
            DemoApp(
                "beacon-live",
                "Beacon Live Rooms",
                "ultimate",
                peak_dau=32_000,
                addons=(("chatroom_keepalive", 1), ("desktop_pc", 1)),
            ),
        ),
        address="1 Marina Boulevard, Singapore",
    ),
    DemoCustomer(
        "demo-cobalt",
        "Cobalt Social",
        "12000.00",
        (
            DemoApp(
                "cobalt-feed",
                "Cobalt Feed",
                "premium",
                peak_dau=9_000,
                busiest_day_messages=2_600_000,
            ),
        ),
    ),
    DemoCustomer(
        "demo-delta",
        "Delta Retail Group",
        "80000.00",
        (
            DemoApp(
                "delta-support",
                "Delta Customer Support",
                "premium",
                peak_dau=45_000,
                busiest_day_messages=5_400_000,
                contract_fee="45000.00",
            ),
            DemoApp(
                "delta-stores",
                "Delta Store Chat",
                "premium",
                peak_dau=6_000,
                addons=(("api_private_publish", 3),),
            ),
        ),
        tax_id="91440300MA5DXXX02Y",
    ),
    DemoCustomer(
        "demo-echo",
        "Echo Learning",
        "9000.00",
        (DemoApp("echo-classroom", "Echo Classroom", "premium", first_day=16, peak_dau=4_000),),
    ),
    DemoCustomer(
        "demo-gamma",
        "Gamma Health",
        "30000.00",
        (
            DemoApp(
                "gamma-care",
                "Gamma Care",
                "premium",
                peak_dau=14_000,
                upgrade_to=("ultimate", 20),
                addons=(("message_callback", 1),),
            ),
        ),
    ),
    DemoCustomer(
        "demo-foxtrot",
        "Foxtrot Hobby Apps",
        "0",
        (DemoApp("foxtrot-notes", "Foxtrot Notes", "free", peak_dau=300),),
    ),
)


def _moment(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=BILLING_TZ)


def _usage_rows(app: DemoApp, period: Period, start: dt.date, today: dt.date) -> list[dict]:
    rng = random.Random(app.key)
    last = min(period.end, today - dt.timedelta(days=1))
    days = [start + dt.timedelta(days=n) for n in range((last - start).days + 1)]
    if not days:
        return []
    peak_index = rng.randrange(len(days))
    busy_index = rng.randrange(len(days))
    rows = []
    for index, day in enumerate(days):
        dau = app.peak_dau if index == peak_index else int(app.peak_dau * rng.uniform(0.55, 0.95))
        # Below the 2,000,000 a day high-volume limit, except on the one busiest day.
        messages = min(dau * rng.randint(40, 90), 1_900_000)
        if app.busiest_day_messages and index == busy_index:
            messages = app.busiest_day_messages
        rows.append(
            {
                "app_key": app.key,
                "date": day.isoformat(),
                "dau": dau,
                "delivered_messages": messages,
            }
        )
    return rows


class Command(BaseCommand):
    help = "Load demo customers with last month's plans, add-ons, usage and deposits."

    def add_arguments(self, parser):
        parser.add_argument(
            "--period", help="the month to fill with history (default: the previous month)"
        )

    def handle(self, *args, period: str | None = None, **options):
        if not Plan.objects.exists():
            self.stderr.write("the price book is empty: run `manage.py load_price_book` first")
            return
        now = timezone.now()
        today = billing_date(now)
        month = Period.parse(period) if period else Period.containing(today).previous()
        created = 0
        for demo in DEMO:
            if Customer.objects.filter(external_id=demo.external_id).exists():
                self.stdout.write(f"exists, left as it is: {demo.external_id}")
                continue
            self._load(demo, month, today)
            created += 1
        self._customer_logins()
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data: {created} customers loaded with history for {month}. Bill it with "
                f"`manage.py bill --period {month} --dry-run`, then without --dry-run "
                "(add --inline if no Celery worker is running)."
            )
        )

    def _customer_logins(self) -> None:
        """One invoice-page login per demo customer, named after its external id."""
        password = os.environ.get("DEMO_PASSWORD", "billing-demo")
        user_model = get_user_model()
        for demo in DEMO:
            customer = Customer.objects.get(external_id=demo.external_id)
            user, created = user_model.objects.get_or_create(
                username=demo.external_id, defaults={"email": customer.billing_email}
            )
            if created:
                user.set_password(password)
                user.save()
                CustomerUser.objects.create(user=user, customer=customer)
        names = ", ".join(demo.external_id for demo in DEMO)
        self.stdout.write(
            f"customer invoice-page logins (password '{password}'): {names} "
            "-> http://127.0.0.1:8000/login/"
        )

    def _load(self, demo: DemoCustomer, month: Period, today: dt.date) -> None:
        opened = _moment(month.start, 8)
        customer = customer_create(
            external_id=demo.external_id,
            name=demo.name,
            billing_email=f"billing@{demo.external_id}.example.com",
            address=demo.address,
            tax_id=demo.tax_id,
            contact_name=f"{demo.name} accounts",
            now=opened,
        )
        if Decimal(demo.deposit) > 0:
            record_deposit(
                customer=customer,
                amount=Decimal(demo.deposit),
                reference="DEMO-TOPUP",
                idempotency_key=f"demo-deposit:{demo.external_id}",
                now=opened,
            )
        rows: list[dict] = []
        for app in demo.apps:
            start = month.start.replace(day=app.first_day)
            created_at = _moment(start)
            application = application_create(
                customer=customer,
                app_key=app.key,
                name=app.name,
                data_center="singapore",
                now=created_at,
            )
            if app.plan != "free":
                plan_change_request(
                    application=application,
                    plan_code=app.plan,
                    effective_date=start,
                    now=created_at,
                )
            for addon_code, quantity in app.addons:
                addon_set(
                    application=application,
                    addon_code=addon_code,
                    quantity=quantity,
                    effective_date=start,
                    now=created_at,
                )
            if app.upgrade_to:
                plan_code, day = app.upgrade_to
                upgrade_day = month.start.replace(day=day)
                plan_change_request(
                    application=application,
                    plan_code=plan_code,
                    effective_date=upgrade_day,
                    now=_moment(upgrade_day),
                )
            if app.contract_fee:
                contract_add(
                    application=application,
                    monthly_fee=Decimal(app.contract_fee),
                    first_day=start,
                    reference=f"DS-{app.key.upper()}",
                    notes="Demo dedicated-service contract",
                    now=created_at,
                )
            rows.extend(_usage_rows(app, month, start, today))
        if rows:
            usage_ingest(rows=rows, now=timezone.now(), source="demo")
        self.stdout.write(f"loaded {demo.external_id}: {demo.name} ({len(demo.apps)} applications)")

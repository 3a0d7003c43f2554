"""Billing runs from the back-office: a confirmation with the number of accounts, the run's
progress and counts, per-account errors, and a re-run of the failed accounts."""

import datetime as dt
import importlib
import io
import re
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.selectors import ledger_balance
from billingsite.audit import SYSTEM_USER
from billingsite.clock import Period
from invoices.admin.dashboard import AuditFilters, AuditTrail
from invoices.models import BillingRun, BillingRunError, Invoice
from invoices.run.runs import billing_run_candidates, billing_run_start
from invoices.run.tasks import start_monthly_billing
from tests.admin.conftest import as_user, form_errors, october_usage
from tests.factories import NOW, ApplicationFactory, CustomerFactory, deposit, usage

pytestmark = pytest.mark.django_db

ADD = "admin:invoices_billingrun_add"


@pytest.fixture
def september_accounts(price_book, frozen_now):
    """Three Premium accounts and one Free account with usage in September 2026."""
    customers = []
    for index in range(3):
        customer = CustomerFactory(name=f"Sept {index}")
        app = ApplicationFactory(customer=customer, plan="premium", app_key=f"sept-{index}")
        for day in range(1, 31):
            usage(app, dt.date(2026, 9, day), dau=5000)
        deposit(customer, "10000.00")
        customers.append(customer)
    ApplicationFactory(customer=CustomerFactory(name="Free Only"), plan="free")
    return customers


def test_start_shows_how_many_accounts_then_bills_them(
    client, manager, september_accounts, django_capture_on_commit_callbacks
):
    as_user(client, manager)
    form = client.get(reverse(ADD))
    assert form.status_code == 200
    assert form.context["form"].initial["period"] == "2026-10"  # last month by default

    confirm = client.post(reverse(ADD), {"period": "2026-09"})
    assert confirm.status_code == 200
    expected = billing_run_candidates(period=Period(2026, 9)).count()
    assert expected == 3
    body = confirm.content.decode()
    assert "This run bills 3 accounts for 2026-09." in body
    assert "Yes, bill 3 accounts" in body
    assert not BillingRun.objects.exists()  # nothing starts before the confirmation

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(reverse(ADD), {"period": "2026-09", "confirmed": "True"})
    run = BillingRun.objects.get()
    assert started["Location"] == reverse("admin:invoices_billingrun_change", args=[run.pk])
    # Tasks run eagerly in tests: the run is done when the page comes back.
    run.refresh_from_db()
    assert (run.status, run.accounts_total, run.invoices_issued, run.created_by) == (
        "finished",
        3,
        3,
        manager,
    )
    assert Invoice.objects.filter(period="2026-09-01", status="issued").count() == 3
    for customer in september_accounts:
        assert ledger_balance(customer=customer) == Decimal("4000.00")
    page = client.get(started["Location"]).content.decode()
    assert "3 of 3 accounts" in page and "No account failed." in page


def test_a_month_with_nothing_to_bill_offers_no_run(client, manager, price_book, frozen_now):
    ApplicationFactory(customer=CustomerFactory(name="Free Only"), plan="free")
    as_user(client, manager)
    assert not billing_run_candidates(period=Period(2026, 9)).exists()

    first = client.post(reverse(ADD), {"period": "2026-09"})
    forced = client.post(reverse(ADD), {"period": "2026-09", "confirmed": "True"})

    for response in (first, forced):
        body = response.content.decode()
        assert response.status_code == 200
        assert "Nothing to bill for 2026-09" in body and "Yes, bill" not in body
    assert not BillingRun.objects.exists()


def test_a_month_billed_meanwhile_is_not_billed_by_the_confirmation(
    client, manager, september_accounts, django_capture_on_commit_callbacks
):
    as_user(client, manager)
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_start(period=Period(2026, 9), now=timezone.now())
    assert BillingRun.objects.count() == 1

    response = client.post(reverse(ADD), {"period": "2026-09", "confirmed": "True"})

    assert "Nothing to bill for 2026-09" in response.content.decode()
    assert BillingRun.objects.count() == 1


@pytest.mark.parametrize("period", ["2026-13", "26-10", "", "october", "2026-11", "2027-01"])
def test_bad_period_is_a_form_error(client, manager, price_book, frozen_now, period):
    response = as_user(client, manager).post(reverse(ADD), {"period": period, "confirmed": "True"})
    assert response.status_code == 200
    assert "period" in form_errors(response)
    assert not BillingRun.objects.exists()


def test_rerun_of_failed_accounts(
    client, manager, september_accounts, django_capture_on_commit_callbacks
):
    customer = september_accounts[0]
    run = BillingRun.objects.create(
        period=dt.date(2026, 9, 1),
        status=BillingRun.Status.FINISHED,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        accounts_total=1,
        accounts_done=1,
        chunks_total=1,
        chunks_done=1,
        accounts_failed=1,
    )
    BillingRunError.objects.create(
        run=run, customer=customer, error="OperationalError: server closed", occurred_at=NOW
    )
    as_user(client, manager)
    page = client.get(reverse("admin:invoices_billingrun_change", args=[run.pk])).content.decode()
    assert "Re-run the 1 failed account" in page and "OperationalError" in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:invoices_billingrun_retry", args=[run.pk]))
    run.refresh_from_db()
    assert (run.accounts_failed, run.invoices_issued, run.status) == (0, 1, "finished")
    assert BillingRunError.objects.get().resolved_at is not None
    assert Invoice.objects.get(customer=customer).status == "issued"
    assert client.get(reverse("admin:invoices_billingrun_retry", args=[run.pk])).status_code == 405


def test_clerk_cannot_start_or_rerun(client, clerk, september_accounts):
    as_user(client, clerk)
    assert client.get(reverse(ADD)).status_code == 403
    assert client.post(reverse(ADD), {"period": "2026-09", "confirmed": "True"}).status_code == 403
    assert not BillingRun.objects.exists()


def test_run_page_shows_counts_and_refreshes_while_running(client, auditor, price_book, frozen_now):
    run = BillingRun.objects.create(
        period=dt.date(2026, 10, 1),
        status=BillingRun.Status.RUNNING,
        created_at=NOW,
        started_at=NOW,
        accounts_total=400,
        accounts_done=100,
        chunks_total=2,
        chunks_done=0,
        invoices_issued=90,
        invoices_held=10,
    )
    body = (
        as_user(client, auditor)
        .get(reverse("admin:invoices_billingrun_change", args=[run.pk]))
        .content.decode()
    )
    assert '<meta http-equiv="refresh" content="5">' in body
    assert "100 of 400 accounts" in body and 'aria-valuenow="25"' in body
    assert "Re-run" not in body


def test_october_fixture_is_consistent(month):
    # Guard for the other tests: the held account is a candidate no more once issued.
    assert list(billing_run_candidates(period=Period(2026, 10))) == [month.beta]
    october_usage  # noqa: B018 - re-exported helper


# --- Stalled runs: resume or close as interrupted (finance managers only) ---------------------


@pytest.fixture
def stalled_run(september_accounts):
    """The September run started at midnight; none of its chunks ever ran (its worker was lost
    with them). The admin's clock is 10:00: no progress for ten hours."""

    return billing_run_start(period=Period(2026, 9), now=NOW, dispatch=False)


def run_page(client, run) -> str:
    return client.get(reverse("admin:invoices_billingrun_change", args=[run.pk])).content.decode()


def test_a_stalled_run_shows_in_the_list_the_run_page_and_the_dashboard(
    client, auditor, stalled_run
):
    as_user(client, auditor)
    listing = client.get(reverse("admin:invoices_billingrun_changelist")).content.decode()
    assert 'data-testid="run-stalled">Stalled<' in listing
    page = run_page(client, stalled_run)
    assert "stalled: no progress since 2026-11-02 00:00:00" in page
    assert '<meta http-equiv="refresh"' not in page
    # Auditors see it, but only managers act on it.
    assert "run-resume" not in page and "run-close" not in page
    index = client.get(reverse("admin:index")).content.decode()
    assert 'data-testid="latest-run-stalled"' in index
    assert (
        f'Run <a href="{reverse("admin:invoices_billingrun_change", args=[stalled_run.pk])}">2026-09 #{stalled_run.pk}</a> is stalled'
        in index
    )


def test_manager_resumes_a_stalled_run(
    client, manager, stalled_run, september_accounts, django_capture_on_commit_callbacks
):
    as_user(client, manager)
    assert 'data-testid="run-resume"' in run_page(client, stalled_run)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:invoices_billingrun_resume", args=[stalled_run.pk]))
    assert response.status_code == 302
    stalled_run.refresh_from_db()
    assert (stalled_run.status, stalled_run.accounts_done, stalled_run.invoices_issued) == (
        "finished",
        3,
        3,
    )
    for customer in september_accounts:
        assert ledger_balance(customer=customer) == Decimal("4000.00")
    assert BillingRun.objects.count() == 1


def test_manager_closes_a_stalled_run_as_interrupted_then_resumes_it(
    client, manager, stalled_run, django_capture_on_commit_callbacks
):
    as_user(client, manager)
    assert 'data-testid="run-close"' in run_page(client, stalled_run)
    client.post(reverse("admin:invoices_billingrun_close_interrupted", args=[stalled_run.pk]))
    stalled_run.refresh_from_db()
    assert (stalled_run.status, stalled_run.accounts_done) == ("interrupted", 0)
    assert not Invoice.objects.exists()
    page = run_page(client, stalled_run)
    assert "Interrupted" in page and "run-resume" in page and "run-close" not in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:invoices_billingrun_resume", args=[stalled_run.pk]))
    stalled_run.refresh_from_db()
    assert (stalled_run.status, stalled_run.invoices_issued) == ("finished", 3)


@pytest.mark.parametrize("role", ["clerk", "auditor"])
def test_clerk_and_auditor_can_neither_resume_nor_close(client, request, role, stalled_run):
    as_user(client, request.getfixturevalue(role))
    for name in ("resume", "close_interrupted"):
        response = client.post(reverse(f"admin:invoices_billingrun_{name}", args=[stalled_run.pk]))
        assert response.status_code == 403
    stalled_run.refresh_from_db()
    assert (stalled_run.status, stalled_run.chunks_done) == ("running", 0)
    assert not Invoice.objects.exists()


def test_a_run_making_progress_is_neither_resumed_nor_closed(client, manager, stalled_run):

    BillingRun.objects.filter(pk=stalled_run.pk).update(progress_at=timezone.now())
    as_user(client, manager)
    page = run_page(client, stalled_run)
    assert "run-resume" not in page and "run-close" not in page
    for name in ("resume", "close_interrupted"):
        response = client.post(
            reverse(f"admin:invoices_billingrun_{name}", args=[stalled_run.pk]), follow=True
        )
        assert response.status_code == 200
        assert "not stalled" in response.content.decode()
    stalled_run.refresh_from_db()
    assert (stalled_run.status, stalled_run.chunks_done) == ("running", 0)
    assert (
        client.get(reverse("admin:invoices_billingrun_resume", args=[stalled_run.pk])).status_code
        == 405
    )


def started_by_shown(client, run) -> tuple[str, str]:
    """Who started `run` as its page and the runs list say it."""
    page = client.get(reverse("admin:invoices_billingrun_change", args=[run.pk]))
    listed = client.get(reverse("admin:invoices_billingrun_changelist"))
    assert page.status_code == listed.status_code == 200
    on_page = re.findall(
        r'<span>Created by</span><strong data-testid="run-started-by">([^<]*)</strong>',
        page.content.decode(),
    )
    in_list = re.findall(r'<td class="field-started_by">([^<]*)</td>', listed.content.decode())
    assert len(on_page) == len(in_list) == 1
    return on_page[0], in_list[0]


def test_the_runs_list_is_titled_billing_runs(client, auditor, stalled_run):
    listing = as_user(client, auditor).get(reverse("admin:invoices_billingrun_changelist"))
    body = listing.content.decode()
    assert "<title>Billing runs | IM billing</title>" in body
    assert "<h1>Billing runs</h1>" in body
    assert "to change" not in body


def test_a_run_the_bill_command_started_shows_the_system_user(client, manager, september_accounts):
    call_command("bill", "--period", "2026-09", "--inline", stdout=io.StringIO())
    run = BillingRun.objects.get()
    assert (run.status, run.created_by) == ("finished", None)

    shown = f"{SYSTEM_USER} (billing run started from the command line)"
    assert started_by_shown(as_user(client, manager), run) == (shown, shown)


def test_a_scheduled_run_shows_the_system_user_and_the_schedule(
    client, manager, september_accounts
):
    run = billing_run_start(
        period=Period(2026, 9),
        now=timezone.now(),
        origin=BillingRun.Origin.SCHEDULE,
        dispatch=False,
    )
    shown = f"{SYSTEM_USER} (scheduled billing run)"
    assert started_by_shown(as_user(client, manager), run) == (shown, shown)


def test_a_run_started_by_a_login_deleted_since_does_not_say_system(
    client, manager, september_accounts
):
    clerk_login = User.objects.create_user(username="former-clerk")
    run = billing_run_start(
        period=Period(2026, 9),
        now=timezone.now(),
        created_by=clerk_login,
        origin=BillingRun.Origin.ADMIN,
        dispatch=False,
    )
    clerk_login.delete()
    run.refresh_from_db()
    shown = "deleted user (billing run started in the admin)"
    assert started_by_shown(as_user(client, manager), run) == (shown, shown)
    assert run_actors() == {run.pk: ("", "deleted user: billing run started in the admin")}


def test_a_run_recorded_before_origins_were_kept_shows_the_system_user(
    client, manager, september_accounts
):
    run = billing_run_start(period=Period(2026, 9), now=timezone.now(), dispatch=False)
    assert run.origin is None
    assert started_by_shown(as_user(client, manager), run) == (SYSTEM_USER, SYSTEM_USER)


def test_a_run_finance_started_shows_who_started_it(client, manager, september_accounts):
    run = billing_run_start(
        period=Period(2026, 9), now=timezone.now(), created_by=manager, dispatch=False
    )

    assert started_by_shown(as_user(client, manager), run) == (
        manager.username,
        manager.username,
    )


def run_actors() -> dict[int, tuple[str, str]]:
    """(username, actor) of each run in the audit trail, by run id."""
    trail = AuditTrail(AuditFilters(kinds=frozenset({"run"})))
    return {entry.object_id: (entry.username, entry.actor) for entry in trail[:10]}


def test_the_audit_trail_names_what_started_each_run(client, manager, september_accounts):
    call_command("bill", "--period", "2026-09", "--inline", stdout=io.StringIO())
    by_command = BillingRun.objects.get()
    # Beat on 2 October: September again (nothing left to bill; its run is still recorded).
    by_beat = BillingRun.objects.get(pk=start_monthly_billing("2026-10-02T00:00:00+08:00"))
    by_finance = billing_run_start(
        period=Period(2026, 9),
        now=timezone.now(),
        created_by=manager,
        origin=BillingRun.Origin.ADMIN,
        dispatch=False,
    )
    # A run from before the origin was kept (invoices migration 0015 left it null).
    before = billing_run_start(period=Period(2026, 9), now=timezone.now(), dispatch=False)

    assert [(run.origin, run.created_by) for run in (by_command, by_beat, by_finance, before)] == [
        ("command", None),
        ("schedule", None),
        ("admin", manager),
        (None, None),
    ]
    assert run_actors() == {
        by_command.pk: ("", "system: billing run started from the command line"),
        by_beat.pk: ("", "system: scheduled billing run"),
        by_finance.pk: ("manager", "manager"),
        before.pk: ("", "system: billing run"),
    }
    # The audit page shows them so.
    page = as_user(client, manager).get("/admin/audit/?kind=run").content.decode()
    assert "system: billing run started from the command line" in page
    assert "system: scheduled billing run" in page


def test_the_migration_marks_the_runs_a_person_started_as_the_admin_s(manager, september_accounts):
    by_finance = billing_run_start(
        period=Period(2026, 9), now=timezone.now(), created_by=manager, dispatch=False
    )
    by_system = billing_run_start(period=Period(2026, 9), now=timezone.now(), dispatch=False)
    migration = importlib.import_module("invoices.migrations.0015_billing_run_origin")

    migration.admin_runs(django_apps, None)

    assert dict(BillingRun.objects.values_list("pk", "origin")) == {
        by_finance.pk: "admin",
        by_system.pk: None,
    }

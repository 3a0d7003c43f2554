"""Applications in the back-office: plan history, usage per month with the billed peak day,
contract / plan / add-on forms through plans.services, and the CSV usage import."""

import datetime as dt
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import DailyUsage, UsageRevision
from plans.models import AddOnChange, DedicatedContract, PlanChange
from tests.admin.conftest import as_user, form_errors
from tests.factories import ApplicationFactory, addon_change, plan_change

pytestmark = pytest.mark.django_db


def app_url(application, name):
    return reverse(f"admin:accounts_application_{name}", args=[application.pk])


def test_application_page_shows_plan_history_addons_and_contracts(client, clerk, month):
    app = month.alpha_app
    plan_change(app, "ultimate", dt.date(2026, 12, 1))
    addon_change(app, "desktop_pc", 1, dt.date(2026, 3, 1))
    body = as_user(client, clerk).get(app_url(app, "change")).content.decode()
    history = body[body.index("Plan history") :]
    assert "Premium" in history and "2026-01-01" in history and "2026-11-30" in history
    assert "Ultimate" in history and "pending" in history
    assert "Desktop (PC) client" in body
    assert "No dedicated-service contract." in body
    assert "Usage by month" in body and "?period=2026-10" in body
    # A clerk reads; the manager's forms are not offered.
    assert "Add dedicated-service contract" not in body


def test_usage_month_highlights_the_billed_peak_day(client, clerk, month):
    response = as_user(client, clerk).get(app_url(month.beta_app, "usage") + "?period=2026-10")
    body = response.content.decode()
    usage_month = response.context["month"]
    peaks = [day.day for day in usage_month.days if day.is_billed_peak]
    assert peaks == [dt.date(2026, 10, 20)]
    over = [day.day for day in usage_month.days if day.over_message_limit]
    assert over == [dt.date(2026, 10, 20)]
    assert usage_month.days_reported == 31
    assert 'data-testid="peak-day"' in body
    peak_row = body[body.index('data-testid="peak-day"') :][:400]
    assert "2026-10-20" in peak_row and "12,000" in peak_row and "3,000,000" in peak_row
    assert "High-volume application" in body
    assert "12,000 on 2026-10-20" in body


def test_usage_month_splits_peaks_by_plan_segment(client, clerk, month):
    # Upgrade on 10-16: the Premium days (1-15) peak on the 15th; Ultimate days on their own.
    plan_change(month.alpha_app, "ultimate", dt.date(2026, 10, 16))
    response = as_user(client, clerk).get(app_url(month.alpha_app, "usage") + "?period=2026-10")
    segments = [(s.plan_code, s.peak_dau, s.peak_day) for s in response.context["month"].segments]
    assert segments == [
        ("premium", 8000, dt.date(2026, 10, 15)),
        ("ultimate", 1031, dt.date(2026, 10, 31)),
    ]
    peaks = [d.day.day for d in response.context["month"].days if d.is_billed_peak]
    assert peaks == [15, 31]


def test_usage_month_with_no_rows_and_a_bad_period_falls_back(client, clerk, month):
    response = as_user(client, clerk).get(app_url(month.alpha_app, "usage") + "?period=2026-13")
    assert response.context["period"].month == 11  # today's month
    assert response.context["month"].days_reported == 0
    assert "not reported" in response.content.decode()


BAD_CONTRACT_INPUT = [
    ({"monthly_fee": "0"}, "monthly_fee", "greater than or equal to 0.01"),
    ({"monthly_fee": "abc"}, "monthly_fee", "Enter a number."),
    ({"monthly_fee": "1.005"}, "monthly_fee", "no more than 2 decimal places"),
    ({"first_day": ""}, "first_day", "This field is required."),
    ({"first_day": "2026-02-30"}, "first_day", "Enter a valid date."),
    ({"last_day": "2026-09-30"}, "last_day", "cannot be before the first day"),
    ({"first_day": "2025-12-31"}, "first_day", "before application beta-app existed"),
    ({"token": ""}, "token", "This field is required."),
]


def test_bad_contract_input_is_a_form_error(client, manager, month):
    as_user(client, manager)
    for data, field, message in BAD_CONTRACT_INPUT:
        post = {
            "monthly_fee": "20000.00",
            "first_day": "2026-10-01",
            "last_day": "",
            "reference": "",
            "notes": "",
            "token": uuid.uuid4().hex,
            **data,
        }
        response = client.post(app_url(month.beta_app, "contract"), post)
        assert response.status_code == 200, data
        errors = form_errors(response)
        assert any(message in text for text in errors.get(field, [])), (data, errors)
    assert not DedicatedContract.objects.exists()


def test_overlapping_contract_is_refused_by_the_service(client, manager, month):
    as_user(client, manager)
    url = app_url(month.beta_app, "contract")
    post = {"monthly_fee": "20000.00", "first_day": "2026-10-01", "token": uuid.uuid4().hex}
    assert client.post(url, post).status_code == 302
    again = client.post(url, {**post, "first_day": "2026-12-01", "token": uuid.uuid4().hex})
    assert "already has a contract from 2026-10-01 to open end" in str(form_errors(again))
    assert DedicatedContract.objects.count() == 1


def test_contract_in_an_invoiced_month_is_refused(client, manager, month):
    response = as_user(client, manager).post(
        app_url(month.alpha_app, "contract"),
        {"monthly_fee": "20000.00", "first_day": "2026-10-01", "token": uuid.uuid4().hex},
    )
    assert "already invoiced (INV-2026-000001)" in str(form_errors(response))
    assert not DedicatedContract.objects.exists()


def test_plan_change_through_the_service(client, manager, month):
    as_user(client, manager)
    url = app_url(month.beta_app, "plan")
    post = {"plan_code": "ultimate", "effective_date": "2026-11-10", "token": uuid.uuid4().hex}
    accepted = client.post(url, post)
    # Beta holds 10,000.00 and has not been debited (its invoice is held): Ultimate needs 8,000.
    assert accepted.status_code == 302
    change = PlanChange.objects.get(application=month.beta_app, plan__code="ultimate")
    assert change.effective_date == dt.date(2026, 11, 10) and change.created_by == manager
    # Alpha's October is invoiced: a change dated in it is refused.
    bad = client.post(app_url(month.alpha_app, "plan"), {**post, "effective_date": "2026-10-05"})
    assert "already invoiced" in str(form_errors(bad))
    unknown = client.post(app_url(month.alpha_app, "plan"), {**post, "plan_code": "gold"})
    assert "plan_code" in form_errors(unknown)


def test_plan_upgrade_refused_below_minimum_deposit(client, manager, price_book, frozen_now):

    app = ApplicationFactory(app_key="poor-app", created_on=dt.date(2026, 11, 1))
    response = as_user(client, manager).post(
        app_url(app, "plan"),
        {"plan_code": "premium", "effective_date": "2026-11-02", "token": uuid.uuid4().hex},
    )
    assert response.status_code == 200
    assert "at least" in str(form_errors(response))
    assert app.plan_changes.count() == 1


def test_addon_set_and_end(client, manager, month):
    as_user(client, manager)
    url = app_url(month.alpha_app, "addon")
    set_ = client.post(
        url,
        {
            "addon_code": "sensitive_words",
            "quantity": "2",
            "effective_date": "2026-11-05",
            "token": uuid.uuid4().hex,
        },
    )
    assert set_.status_code == 302
    end = client.post(
        url,
        {
            "addon_code": "sensitive_words",
            "quantity": "0",
            "effective_date": "2026-11-20",
            "token": uuid.uuid4().hex,
        },
    )
    assert end.status_code == 302
    rows = list(
        AddOnChange.objects.filter(application=month.alpha_app)
        .order_by("effective_date")
        .values_list("quantity", "effective_date")
    )
    assert rows == [(2, dt.date(2026, 11, 5)), (0, dt.date(2026, 11, 20))]
    bad = client.post(
        url,
        {
            "addon_code": "sensitive_words",
            "quantity": "-1",
            "effective_date": "2026-11-05",
            "token": uuid.uuid4().hex,
        },
    )
    assert "quantity" in form_errors(bad)
    assert AddOnChange.objects.count() == 2


# The admin forms go through plans.change_policy like the console (today: 2026-11-02).
FROZEN_MONTH_FORMS = [
    ("plan", {"plan_code": "free", "effective_date": "2026-10-01"}, "held invoice"),
    ("plan", {"plan_code": "free", "effective_date": "9999-12-15"}, "more than 366 days"),
    ("plan", {"plan_code": "ultimate", "effective_date": "2027-11-04"}, "more than 366 days"),
    (
        "addon",
        {"addon_code": "desktop_pc", "quantity": "1", "effective_date": "2026-10-05"},
        "held invoice",
    ),
    (
        "addon",
        {"addon_code": "desktop_pc", "quantity": "0", "effective_date": "9999-12-15"},
        "more than 366 days",
    ),
]


@pytest.mark.parametrize(("form", "post", "message"), FROZEN_MONTH_FORMS)
def test_plan_and_addon_forms_refuse_a_held_month_and_far_dates(
    client, manager, month, form, post, message
):
    before = (PlanChange.objects.count(), AddOnChange.objects.count())
    response = as_user(client, manager).post(
        app_url(month.beta_app, form), {**post, "token": uuid.uuid4().hex}
    )
    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in text for text in errors.get("effective_date", [])), errors
    assert (PlanChange.objects.count(), AddOnChange.objects.count()) == before


def test_admin_downgrade_and_addon_end_dated_in_the_past_take_effect_as_late_as_the_rules_say(
    client, manager, month
):
    as_user(client, manager)
    addon_change(month.alpha_app, "sensitive_words", 2, dt.date(2026, 11, 1))
    downgrade = client.post(
        app_url(month.alpha_app, "plan"),
        {"plan_code": "free", "effective_date": "2026-11-01", "token": uuid.uuid4().hex},
    )
    assert downgrade.status_code == 302
    end = client.post(
        app_url(month.alpha_app, "addon"),
        {
            "addon_code": "sensitive_words",
            "quantity": "0",
            "effective_date": "2026-11-01",
            "token": uuid.uuid4().hex,
        },
    )
    assert end.status_code == 302
    live = PlanChange.objects.filter(application=month.alpha_app, cancelled_at__isnull=True)
    assert [(c.plan.code, c.effective_date) for c in live.order_by("effective_date")] == [
        ("premium", dt.date(2026, 1, 1)),
        ("free", dt.date(2026, 12, 1)),
    ]
    ended = AddOnChange.objects.get(application=month.alpha_app, quantity=0, note="ended")
    assert ended.effective_date == dt.date(2026, 11, 3)


def csv_file(text: str, name: str = "usage.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_usage_csv_import(client, clerk, month):
    as_user(client, clerk)
    url = reverse("admin:accounts_dailyusage_import")
    text = (
        "app_key,date,dau,delivered_messages\n"
        "alpha-app,2026-11-01,900,1500\n"
        "beta-app,2026-11-01,700,1200\n"
    )
    response = client.post(url, {"file": csv_file(text)}, follow=True)
    assert "Usage imported: 2 new rows, 0 replaced, 0 unchanged." in response.content.decode()
    again = client.post(url, {"file": csv_file(text.replace("900", "950"))}, follow=True)
    assert "0 new rows, 1 replaced, 1 unchanged" in again.content.decode()
    revision = UsageRevision.objects.get()
    assert (revision.old_dau, revision.new_dau, revision.changed_by) == (900, 950, clerk)


BAD_CSV = [
    ("app_key,date,dau,delivered_messages\nnope,2026-11-01,1,1\n", "u.csv", "line 2"),
    ("app_key,date,dau,delivered_messages\nalpha-app,2026-11-01,-1,1\n", "u.csv", "dau"),
    ("app_key,date,dau,delivered_messages\nalpha-app,2026-12-01,1,1\n", "u.csv", "future"),
    ("date,app_key\n", "u.csv", "the first line must be the header"),
    ("app_key,date,dau,delivered_messages\nalpha-app,2026-10-05,1,1\n", "u.csv", "invoiced"),
    ("app_key,date,dau,delivered_messages\n", "usage.txt", "Choose a .csv file."),
    ("", "u.csv", "The submitted file is empty."),
]


def test_bad_usage_csv_is_a_form_error_and_imports_nothing(client, clerk, month):
    as_user(client, clerk)
    before = DailyUsage.objects.count()
    for text, name, message in BAD_CSV:
        response = client.post(
            reverse("admin:accounts_dailyusage_import"), {"file": csv_file(text, name)}
        )
        assert response.status_code == 200, text
        assert message in str(form_errors(response)), (text, form_errors(response))
    assert DailyUsage.objects.count() == before

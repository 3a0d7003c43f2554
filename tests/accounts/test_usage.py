"""Usage ingest: the service, the CSV import and POST /api/v1/usage/."""

import datetime as dt
import io
import json
import threading
from decimal import Decimal

import pytest
from django.db import connection
from freezegun import freeze_time

from accounts import roles
from accounts.models import DailyUsage, UsageRevision
from accounts.usage import (
    IngestResult,
    UsageBilledMonthError,
    UsageValidationError,
    usage_import_csv,
    usage_ingest,
)
from billingsite.clock import Period
from invoices.documents.invoiced_months import invoice_kept
from invoices.models import Invoice
from invoices.selectors import rate_customer_period
from plans.price_book import load_price_book
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory, UserFactory

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
LATER = NOW + dt.timedelta(hours=5)
URL = "/api/v1/usage/"

pytestmark = pytest.mark.usefixtures("price_book")


def row(app, day: str, dau: int, messages: int = 1000) -> dict:
    key = app if isinstance(app, str) else app.app_key
    return {"app_key": key, "date": day, "dau": dau, "delivered_messages": messages}


def stored(app) -> list[tuple[str, int, int]]:
    return [
        (u.day.isoformat(), u.dau, u.delivered_messages)
        for u in DailyUsage.objects.filter(application=app).order_by("day")
    ]


def issue_invoice(customer, period: dt.date, status=Invoice.Status.ISSUED) -> Invoice:
    issued = status in Invoice.ISSUED_STATES
    invoice = Invoice.objects.create(
        customer=customer,
        period=period,
        status=status,
        number="INV-2026-000042" if issued else None,
        customer_name=customer.name,
        rated_at=NOW,
        issued_at=NOW if issued else None,
        issue_date=NOW.date() if issued else None,
    )
    invoice_kept(invoice)
    return invoice


@pytest.fixture
def app(db):
    return ApplicationFactory(app_key="app-one", plan="premium", created_on=dt.date(2026, 9, 1))


# --- the service ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_rows_are_created_and_a_resend_changes_nothing(app):
    rows = [row(app, "2026-10-01", 800), row(app, "2026-10-02", 950, 2_500)]
    assert usage_ingest(rows=rows, now=NOW) == IngestResult(created=2, updated=0, unchanged=0)
    assert usage_ingest(rows=rows, now=LATER) == IngestResult(created=0, updated=0, unchanged=2)
    assert stored(app) == [("2026-10-01", 800, 1000), ("2026-10-02", 950, 2500)]
    assert UsageRevision.objects.count() == 0
    assert set(DailyUsage.objects.values_list("updated_at", flat=True)) == {NOW}


@pytest.mark.django_db
def test_a_different_value_replaces_the_row_and_keeps_a_revision(app):
    platform = UserFactory(groups=[roles.INGEST])
    usage_ingest(rows=[row(app, "2026-10-01", 800), row(app, "2026-10-02", 900)], now=NOW)
    result = usage_ingest(
        rows=[row(app, "2026-10-01", 800), row(app, "2026-10-02", 1200, 5000)],
        now=LATER,
        changed_by=platform,
    )
    assert result == IngestResult(created=0, updated=1, unchanged=1)
    assert stored(app) == [("2026-10-01", 800, 1000), ("2026-10-02", 1200, 5000)]
    revision = UsageRevision.objects.get()
    assert revision.usage.day == dt.date(2026, 10, 2)
    assert (revision.old_dau, revision.old_delivered_messages) == (900, 1000)
    assert (revision.new_dau, revision.new_delivered_messages) == (1200, 5000)
    assert (revision.changed_by, revision.changed_at, revision.source) == (platform, LATER, "api")
    assert DailyUsage.objects.get(day=dt.date(2026, 10, 2)).updated_at == LATER


@pytest.mark.django_db
def test_only_writes_that_add_or_change_a_day_of_a_past_month_bump_the_usage_version(app):
    other = ApplicationFactory(customer=app.customer, plan="premium", created_on=app.created_on)

    def versions():
        app.refresh_from_db()
        other.refresh_from_db()
        return app.usage_version, other.usage_version

    assert versions() == (0, 0)
    # NOW is in October: the platform's daily push of the month under way bumps nothing.
    usage_ingest(rows=[row(app, "2026-10-01", 800), row(app, "2026-10-02", 900)], now=NOW)
    assert versions() == (0, 0)
    # September is over (a run may be billing it): one request, one bump, whatever its rows.
    usage_ingest(rows=[row(app, "2026-09-01", 800), row(app, "2026-09-02", 900)], now=NOW)
    assert versions() == (1, 0)
    usage_ingest(rows=[row(app, "2026-09-01", 800)], now=LATER)
    assert versions() == (1, 0)  # nothing new
    usage_ingest(
        rows=[
            row(app, "2026-09-02", 901),
            row(other, "2026-09-02", 5),
            row(other, "2026-10-03", 5),
        ],
        now=LATER,
    )
    assert versions() == (2, 1)
    with pytest.raises(UsageValidationError):
        usage_ingest(rows=[row(app, "2026-09-03", 5), row("nope", "2026-09-03", 5)], now=LATER)
    assert versions() == (2, 1)  # refused: nothing written, nothing bumped


@pytest.mark.django_db
def test_peak_dau_and_its_day_reach_the_invoice_explanation(app):
    usage_ingest(
        rows=[
            row(app, "2026-10-03", 14_000),
            row(app, "2026-10-09", 25_000),
            row(app, "2026-10-12", 12_000),
        ],
        now=NOW,
    )
    rated = rate_customer_period(customer=app.customer, period=Period(2026, 10))
    (line,) = rated.lines
    assert (line.peak_dau, line.peak_day, line.amount) == (
        25_000,
        dt.date(2026, 10, 9),
        Decimal("12000.00"),
    )


def assert_refused(rows, expected: list[tuple[int | None, str | None, str]], *, now=NOW):
    before = (DailyUsage.objects.count(), UsageRevision.objects.count())
    with pytest.raises(UsageValidationError) as info:
        usage_ingest(rows=rows, now=now)
    got = [(e["index"], e["field"]) for e in info.value.errors]
    assert got == [(index, field) for index, field, _ in expected]
    for error, (_index, _field, fragment) in zip(info.value.errors, expected, strict=True):
        assert fragment in error["message"], error
    assert (DailyUsage.objects.count(), UsageRevision.objects.count()) == before


@pytest.mark.django_db
def test_every_bad_row_is_listed_and_nothing_is_stored(app):
    ApplicationFactory(app_key="app-late", created_on=dt.date(2026, 10, 10))
    rows = [
        row(app, "2026-10-01", 10),  # fine, but the request fails as a whole
        row("nope", "2026-10-01", 10),
        row(app, "2026-10-02", -1),
        row(app, "2026-10-03", 1.5),
        {**row(app, "2026-10-04", 1), "delivered_messages": "12"},
        row(app, "2026-10-17", 1),
        row("app-late", "2026-10-09", 1),
        row(app, "2026-10-01", 11),
        row(app, "2026-13-01", 1),
        "not an object",
        {"app_key": app.app_key, "date": "2026-10-05"},
        row(app, "2026-10-06", True),
    ]
    assert_refused(
        rows,
        [
            (1, "app_key", "unknown app_key 'nope'"),
            (2, "dau", "cannot be negative"),
            (3, "dau", "whole number"),
            (4, "delivered_messages", "whole number"),
            (5, "date", "in the future"),
            (6, "date", "before application app-late existed (created 2026-10-10)"),
            (7, "date", "also in row 0"),
            (8, "date", "2026-10-31"),
            (9, None, "object"),
            (10, "dau", "dau is required"),
            (10, "delivered_messages", "delivered_messages is required"),
            (11, "dau", "whole number"),
        ],
    )


@pytest.mark.django_db
def test_today_is_accepted_tomorrow_is_the_future(app):
    assert usage_ingest(rows=[row(app, "2026-10-16", 5)], now=NOW).created == 1
    # 23:30 UTC on the 16th is already the 17th in Asia/Shanghai.
    late_utc = dt.datetime(2026, 10, 16, 23, 30, tzinfo=dt.UTC)
    assert usage_ingest(rows=[row(app, "2026-10-17", 5)], now=late_utc).created == 1


@pytest.mark.django_db
def test_more_than_ten_thousand_rows_are_refused(app):
    rows = [row(app, "2026-10-01", 1)] * 10_001
    assert_refused(rows, [(None, None, "at most 10,000 rows per request, got 10,001")])


@pytest.mark.django_db
def test_a_request_that_is_not_a_list_is_refused(app):
    assert_refused({"rows": []}, [(None, None, "expected a JSON list")])


@pytest.mark.django_db
def test_changing_an_invoiced_month_is_refused_with_the_invoice(app):
    usage_ingest(rows=[row(app, "2026-09-30", 700)], now=NOW)
    issue_invoice(app.customer, dt.date(2026, 9, 1))
    # Resending what was billed is fine and changes nothing.
    assert usage_ingest(rows=[row(app, "2026-09-30", 700)], now=LATER).unchanged == 1
    for rows in (
        [row(app, "2026-10-01", 1), row(app, "2026-09-30", 701)],
        [row(app, "2026-09-29", 5)],
    ):
        with pytest.raises(UsageBilledMonthError) as info:
            usage_ingest(rows=rows, now=LATER)
        (conflict,) = info.value.conflicts
        assert conflict["invoice"] == "INV-2026-000042"
        assert conflict["app_key"] == app.app_key
    assert stored(app) == [("2026-09-30", 700, 1000)]
    assert UsageRevision.objects.count() == 0


@pytest.mark.django_db
def test_a_draft_or_held_invoice_does_not_freeze_usage(app):
    issue_invoice(app.customer, dt.date(2026, 9, 1), status=Invoice.Status.HELD)
    assert usage_ingest(rows=[row(app, "2026-09-30", 700)], now=NOW).created == 1


@pytest.mark.django_db
def test_another_customers_invoice_does_not_freeze_this_one(app):
    other = ApplicationFactory(created_on=dt.date(2026, 9, 1))
    issue_invoice(other.customer, dt.date(2026, 9, 1))
    assert usage_ingest(rows=[row(app, "2026-09-30", 700)], now=NOW).created == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_of_one_day_keep_every_revision():

    load_price_book()
    application = ApplicationFactory(created_on=dt.date(2026, 9, 1))
    usage_ingest(rows=[row(application, "2026-10-01", 100)], now=NOW)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def send(dau: int) -> None:
        try:
            barrier.wait(timeout=10)
            usage_ingest(rows=[row(application, "2026-10-01", dau)], now=LATER)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(dau,)) for dau in (200, 300, 400, 500)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    revisions = list(UsageRevision.objects.order_by("id"))
    assert len(revisions) == 4
    # Each revision starts where the one before ended: none was lost or overwritten.
    assert revisions[0].old_dau == 100
    for earlier, later in zip(revisions, revisions[1:], strict=False):
        assert later.old_dau == earlier.new_dau
    assert DailyUsage.objects.get().dau == revisions[-1].new_dau


# --- CSV import ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_csv_import_has_the_same_rules(app):
    good = io.BytesIO(
        b"\xef\xbb\xbfapp_key,date,dau,delivered_messages\r\n"
        b"app-one,2026-10-01,800,1000\r\napp-one,2026-10-02,900,1200\r\n\r\n"
    )
    assert usage_import_csv(file_obj=good, now=NOW) == IngestResult(2, 0, 0)
    again = io.StringIO("app_key,date,dau,delivered_messages\napp-one,2026-10-02,950,1200\n")
    assert usage_import_csv(file_obj=again, now=LATER) == IngestResult(0, 1, 0)
    assert UsageRevision.objects.get().source == "csv"

    bad = io.StringIO(
        "app_key,date,dau,delivered_messages\n"
        "app-one,2026-10-03,12.5,1\n"
        "ghost,2026-10-03,1,1\n"
        "app-one,2026-10-04,-3,1\n"
    )
    with pytest.raises(UsageValidationError) as info:
        usage_import_csv(file_obj=bad, now=NOW)
    assert [(e["line"], e["field"]) for e in info.value.errors] == [
        (2, "dau"),
        (3, "app_key"),
        (4, "dau"),
    ]
    assert DailyUsage.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content",
    [b"", b"app,date,dau\napp-one,2026-10-01,1\n", b"\xff\xfe\x00bad"],
)
def test_csv_without_the_header_or_not_utf8_is_refused(app, content):
    with pytest.raises(UsageValidationError):
        usage_import_csv(file_obj=io.BytesIO(content), now=NOW)
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
def test_csv_invoiced_month_conflict_names_the_line(app):
    issue_invoice(app.customer, dt.date(2026, 9, 1))
    content = io.StringIO("app_key,date,dau,delivered_messages\napp-one,2026-09-03,1,1\n")
    with pytest.raises(UsageBilledMonthError) as info:
        usage_import_csv(file_obj=content, now=NOW)
    assert info.value.conflicts[0]["line"] == 2


# --- the endpoint --------------------------------------------------------------------------


@pytest.mark.django_db
@freeze_time(NOW)
def test_endpoint_ingests_and_reports_counts(app, client_for):
    client = client_for(roles.INGEST)
    rows = [row(app, "2026-10-01", 800), row(app, "2026-10-02", 900)]
    response = client.post(URL, rows, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"created": 2, "updated": 0, "unchanged": 0}
    rows[1]["dau"] = 901
    response = client.post(URL, rows, format="json")
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 1}
    assert UsageRevision.objects.get().changed_by == client.user


@pytest.mark.django_db
@freeze_time(NOW)
def test_endpoint_lists_bad_rows(app, client_for):
    response = client_for(roles.INGEST).post(
        URL, [row(app, "2026-10-01", 1), row("nope", "2026-10-01", -2)], format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_rows"
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "app_key"), (1, "dau")]
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
@freeze_time(NOW)
@pytest.mark.parametrize("body", [b"[{", b"not json", b'["\xc3\x28"]', b""])
def test_endpoint_refuses_malformed_json(app, client_for, body):
    response = client_for(roles.INGEST).post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


@pytest.mark.django_db
@freeze_time(NOW)
def test_endpoint_refuses_more_than_ten_thousand_rows(app, client_for):
    rows = [row(app, "2026-10-01", 1)] * 10_001
    response = client_for(roles.INGEST).post(URL, json.dumps(rows), content_type="application/json")
    assert response.status_code == 400
    assert "10,000" in response.json()["errors"][0]["message"]
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
@freeze_time(NOW)
def test_endpoint_answers_409_for_an_invoiced_month(app, client_for):
    issue_invoice(app.customer, dt.date(2026, 9, 1))
    response = client_for(roles.INGEST).post(URL, [row(app, "2026-09-10", 3)], format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "month_invoiced"
    assert body["conflicts"] == [
        {"index": 0, "app_key": "app-one", "date": "2026-09-10", "invoice": "INV-2026-000042"}
    ]
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
@freeze_time(NOW)
@pytest.mark.parametrize(
    "groups",
    [
        (roles.CONSOLE,),
        (roles.FINANCE_CLERK,),
        (roles.FINANCE_MANAGER,),
        (roles.ACCOUNTING,),
        (roles.AUDITOR,),
        (),
    ],
)
def test_only_the_ingest_role_may_send_usage(app, client_for, groups):
    response = client_for(*groups).post(URL, [row(app, "2026-10-01", 1)], format="json")
    assert response.status_code == 403
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
def test_anonymous_usage_is_refused(app, client):
    response = client.post(URL, [row(app, "2026-10-01", 1)], content_type="application/json")
    assert response.status_code in (401, 403)
    assert DailyUsage.objects.count() == 0


@pytest.mark.django_db
def test_a_key_with_a_comma_is_unknown_not_split(app):
    ApplicationFactory(app_key="app-two", created_on=dt.date(2026, 9, 1))
    assert_refused(
        [row("app-one,app-two", "2026-10-01", 1)],
        [(0, "app_key", "unknown app_key 'app-one,app-two'")],
    )

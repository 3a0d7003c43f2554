"""Issue 8's end-to-end path: everything through the HTTP API except the month-end run."""

import datetime as dt

import pytest
from freezegun import freeze_time

from accounts import roles
from accounts.models import Customer, LedgerEntry
from billingsite.clock import Period
from invoices.documents.services import bill_customer

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.django_db
def test_console_customer_lifecycle_through_the_api(price_book, client_for):
    console = client_for(roles.CONSOLE)
    finance = client_for(roles.FINANCE_MANAGER)
    platform = client_for(roles.INGEST)

    with freeze_time(dt.datetime(2026, 10, 1, 9, 0, tzinfo=SHANGHAI)) as clock:
        response = console.post(
            "/api/v1/customers/",
            {
                "external_id": "console-501",
                "name": "Blue Heron Social",
                "billing_email": "finance@blueheron.example.com",
                "address": "88 Binjiang Avenue, Hangzhou",
                "tax_id": "91330100MA2B00000X",
            },
            format="json",
        )
        assert response.status_code == 201, response.content

        response = finance.post(
            "/api/v1/customers/console-501/deposits/",
            {"amount": "20000.00", "reference": "CMB 2026-10-01 #5531"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="blueheron-topup-1",
        )
        assert response.status_code == 201, response.content

        response = console.post(
            "/api/v1/applications/",
            {
                "app_key": "blueheron-im",
                "name": "Blue Heron IM",
                "customer": "console-501",
                "data_center": "singapore",
            },
            format="json",
        )
        assert response.status_code == 201, response.content

        response = console.post(
            "/api/v1/applications/blueheron-im/plan-changes/",
            {"plan": "premium", "effective_date": "2026-10-01"},
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["effective_date"] == "2026-10-01"

        clock.move_to(dt.datetime(2026, 10, 16, 9, 0, tzinfo=SHANGHAI))
        response = console.post(
            "/api/v1/applications/blueheron-im/addons/",
            {"addon": "chatroom_keepalive", "quantity": 1, "effective_date": "2026-10-16"},
            format="json",
        )
        assert response.status_code == 201, response.content

        clock.move_to(dt.datetime(2026, 10, 31, 23, 50, tzinfo=SHANGHAI))
        rows = [
            {
                "app_key": "blueheron-im",
                "date": f"2026-10-{day:02d}",
                "dau": 25_000 if day == 20 else 9_000 + day,
                "delivered_messages": 400_000,
            }
            for day in range(1, 32)
        ]
        response = platform.post("/api/v1/usage/", rows, format="json")
        assert response.json() == {"created": 31, "updated": 0, "unchanged": 0}

        estimate = console.get("/api/v1/customers/console-501/estimate/").json()
        assert estimate["total"] == "13032.26"

        # The month-end run (the billing helper's per-account step), at 00:00 on the 2nd.
        clock.move_to(dt.datetime(2026, 11, 2, 0, 0, tzinfo=SHANGHAI))
        customer = Customer.objects.get(external_id="console-501")
        outcome = bill_customer(
            customer=customer,
            period=Period(2026, 10),
            now=dt.datetime(2026, 11, 2, 0, 0, tzinfo=SHANGHAI),
        )
        assert outcome == "issued"

        (invoice,) = console.get("/api/v1/customers/console-501/invoices/").json()
        assert (invoice["period"], invoice["status"], invoice["total"]) == (
            "2026-10",
            "issued",
            "13032.26",
        )
        lines = [(line["code"], line["amount"], line["peak_dau"]) for line in invoice["lines"]]
        # Premium at peak 25,000 (6,000 + 2 x 3,000) and keep-alive 2,000 x 16/31.
        assert lines == [("premium", "12000.00", 25_000), ("chatroom_keepalive", "1032.26", None)]
        assert invoice["lines"][0]["peak_day"] == "2026-10-20"

        body = console.get("/api/v1/customers/console-501/").json()
        assert body["balance"] == "6967.74"
        assert body["in_arrears_since"] is None
        assert LedgerEntry.objects.filter(customer=customer).count() == 2

        # The invoiced month's usage is now frozen.
        rows[19]["dau"] = 30_000
        response = platform.post("/api/v1/usage/", rows, format="json")
        assert response.status_code == 409
        assert response.json()["conflicts"][0]["invoice"] == invoice["number"]

"""The usage push answers with its three counts as they are (accounts.api.views): the same
body, key order included, as IngestResultSerializer, which documents it in the schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import roles
from accounts.api.serializers import IngestResultSerializer
from accounts.models import DailyUsage, UsageRevision
from accounts.usage import IngestResult
from billingsite.clock import billing_date
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory


@pytest.mark.parametrize(
    "result", [IngestResult(0, 0, 0), IngestResult(3, 1, 2), IngestResult(10_000, 0, 0)]
)
def test_the_counts_are_the_serializer_body(result):
    assert list(IngestResultSerializer(result).data.items()) == list(result.as_dict().items())


@pytest.mark.django_db
def test_created_updated_unchanged_bodies_over_http(client_for, price_book):
    client = client_for(roles.INGEST)
    app = ApplicationFactory(created_on=dt.date(2026, 1, 1))
    today = billing_date(timezone.now())
    row = {"app_key": app.app_key, "date": today.isoformat(), "dau": 5, "delivered_messages": 9}

    def push(**changes):
        response = client.post("/api/v1/usage/", [row | changes], format="json")
        assert response.status_code == 200
        return response.content

    assert push() == b'{"created":1,"updated":0,"unchanged":0}'
    assert push() == b'{"created":0,"updated":0,"unchanged":1}'
    assert push(dau=6) == b'{"created":0,"updated":1,"unchanged":0}'
    (revision,) = UsageRevision.objects.all()
    assert (revision.old_dau, revision.new_dau, revision.changed_by_id, revision.source) == (
        5,
        6,
        client.user.pk,
        "api",
    )


@postgres_only
@pytest.mark.django_db
def test_a_changed_row_is_written_with_its_revision_in_one_statement(client_for, price_book):
    client = client_for(roles.INGEST)
    app = ApplicationFactory(created_on=dt.date(2026, 1, 1))
    row = {
        "app_key": app.app_key,
        "date": billing_date(timezone.now()).isoformat(),
        "dau": 5,
        "delivered_messages": 9,
    }
    assert client.post("/api/v1/usage/", [row], format="json").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/usage/", [row | {"dau": 6}], format="json")
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0}
    statements = [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    # The token, the locks with the stored row (one round trip), the invoiced months, the write.
    assert len(statements) == 4
    (write,) = [sql for sql in statements if f"UPDATE {DailyUsage._meta.db_table}" in sql]
    assert f"INSERT INTO {UsageRevision._meta.db_table}" in write
    assert DailyUsage.objects.get(application=app).dau == 6
    assert UsageRevision.objects.get().new_dau == 6


def test_as_dict_names_every_field_of_the_result():
    # A field added to IngestResult must reach the answer too.
    assert list(IngestResult(1, 2, 3).as_dict()) == [f.name for f in fields(IngestResult)]

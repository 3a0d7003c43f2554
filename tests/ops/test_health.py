import re
import time

import pytest
from django.core.cache import cache
from kombu import Connection

from billingsite.celery import app
from billingsite.ops import health
from billingsite.ops.beat import HEARTBEAT_KEY


@pytest.fixture
def beat_ticked():

    cache.set(HEARTBEAT_KEY, time.time() - 3)


def test_healthz_answers_without_the_database(client):
    # No `db` fixture: any query would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_with_database_migrations_broker_and_a_recent_beat(client, beat_ticked):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "migrations": True,
        "broker": True,
        "beat": True,
    }
    assert re.fullmatch(r"seen \d+ s ago", body["checks"]["beat"]["detail"])


@pytest.mark.django_db
def test_readyz_is_503_when_beat_was_never_seen(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["beat"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_is_503_when_beat_stopped_ticking(client, settings):

    settings.BEAT_STALE_AFTER_SECONDS = 300
    cache.set(HEARTBEAT_KEY, time.time() - 301)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"] == {"ok": False, "detail": "last seen 301 s ago"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_unreachable(client, beat_ticked, monkeypatch):

    monkeypatch.setattr(
        app,
        "connection_for_write",
        lambda: Connection("redis://127.0.0.1:1/0", connect_timeout=0.5),
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["broker"]["detail"].startswith("unreachable")


@pytest.mark.django_db
def test_readyz_is_503_while_migrations_are_not_applied(client, beat_ticked, monkeypatch):

    monkeypatch.setattr(health, "_migrations_seen_applied", False)
    monkeypatch.setattr(
        health.MigrationExecutor, "migration_plan", lambda self, targets: [("invoices", "0099")]
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False,
        "detail": "1 not applied (run manage.py migrate)",
    }

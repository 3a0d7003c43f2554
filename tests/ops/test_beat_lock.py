import os
import uuid

import pytest
from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

from billingsite.celery import app
from billingsite.ops import beat
from billingsite.ops.beat import HEARTBEAT_KEY, LOCK_KEY, STANDBY_SECONDS, LockedDatabaseScheduler
from billingsite.ops.config import parse_cache_url


@pytest.fixture
def scheduled(monkeypatch):
    """Which scheduler instances reached the real scheduling (DatabaseScheduler.tick)."""
    calls = []

    def tick(self, *args, **kwargs):
        calls.append(self)
        return 5.0

    monkeypatch.setattr(DatabaseScheduler, "tick", tick)
    return calls


# django-celery-beat closes the connection on start: no wrapping test transaction.
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_schedules_nothing_until_the_first_one_is_gone(scheduled):
    first = LockedDatabaseScheduler(app=app)
    second = LockedDatabaseScheduler(app=app)

    assert first.tick() == 5.0
    assert second.tick() == STANDBY_SECONDS
    assert first.tick() == 5.0
    assert scheduled == [first, first]
    # Read as the lease is written (raw Redis where the cache is Redis, the cache elsewhere).
    assert beat.beat_lease_holder() == first.lease_owner
    assert cache.get(HEARTBEAT_KEY) is not None

    # The first beat stops cleanly: it hands the lease back and the second one takes over.
    first.close()
    assert second.tick() == 5.0
    assert first.tick() == STANDBY_SECONDS
    assert scheduled == [first, first, second]


# django-celery-beat closes the connection on start: no wrapping test transaction.
@pytest.mark.django_db(transaction=True)
def test_each_beat_says_on_its_first_tick_whether_it_schedules_and_again_on_a_change(
    scheduled, caplog
):
    first = LockedDatabaseScheduler(app=app)
    second = LockedDatabaseScheduler(app=app)
    with caplog.at_level("INFO", logger="billingsite.ops.beat"):
        first.tick()
        second.tick()
        first.tick()
        second.tick()
        first.close()
        second.tick()
    lease_records = [r for r in caplog.records if r.name == "billingsite.ops.beat"]
    assert [(r.levelname, r.getMessage()) for r in lease_records] == [
        ("INFO", f"beat lock taken by {first.lease_owner}: this beat schedules"),
        (
            "WARNING",
            f"beat lock held by {first.lease_owner}: this beat ({second.lease_owner}) "
            "schedules nothing",
        ),
        ("INFO", f"beat lock taken by {second.lease_owner}: this beat schedules"),
    ]
    second.close()


# django-celery-beat closes the connection on start: no wrapping test transaction.
@pytest.mark.django_db(transaction=True)
def test_an_expired_lease_of_a_dead_beat_is_taken_over(scheduled):
    dead = LockedDatabaseScheduler(app=app)
    dead.tick()
    standby = LockedDatabaseScheduler(app=app)
    assert standby.tick() == STANDBY_SECONDS
    cache.delete(LOCK_KEY)  # what the lease's expiry does LEASE_SECONDS after the last tick
    assert standby.tick() == 5.0
    assert scheduled == [dead, standby]


@pytest.fixture
def redis_cache(settings):
    """The production cache: Redis (the broker's server, a prefix of this test's own)."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("needs Redis: CELERY_BROKER_URL=redis://... (.ci/run sets it)")
    settings.CACHES = {
        "default": parse_cache_url(f"{broker}?key_prefix=beat-test-{uuid.uuid4().hex[:8]}")
    }
    redis_client, key = beat._redis()
    yield redis_client, key
    redis_client.delete(key)


def test_on_redis_a_second_beat_waits_and_takes_over_an_expired_lease(redis_cache):
    client, key = redis_cache
    assert beat.beat_lease_take(owner="first")
    assert not beat.beat_lease_take(owner="second")
    assert client.get(key) == b"first"
    client.expire(key, 5)
    assert beat.beat_lease_take(owner="first")  # renewing restores the whole lease
    assert client.ttl(key) > 5
    assert beat.beat_lease_holder() == "first"

    client.delete(key)  # what expiry does when the first beat stops ticking
    assert beat.beat_lease_take(owner="second")
    assert client.get(key) == b"second"


def test_on_redis_a_beat_that_lost_its_lease_can_neither_renew_nor_release_the_new_one(
    redis_cache,
):
    client, key = redis_cache
    assert beat.beat_lease_take(owner="paused")
    client.delete(key)  # the paused beat's lease expired while it slept
    assert beat.beat_lease_take(owner="standby")
    ttl = client.ttl(key)

    # The paused beat wakes: read-then-write would have overwritten the standby's lease.
    assert not beat.beat_lease_take(owner="paused")
    beat.beat_lease_release(owner="paused")
    assert client.get(key) == b"standby"
    assert client.ttl(key) <= ttl

    beat.beat_lease_release(owner="standby")
    assert client.get(key) is None


# django-celery-beat closes the connection on start: no wrapping test transaction.
@pytest.mark.django_db(transaction=True)
def test_on_redis_two_schedulers_one_schedules(redis_cache, scheduled):
    first = LockedDatabaseScheduler(app=app)
    second = LockedDatabaseScheduler(app=app)
    assert [first.tick(), second.tick(), first.tick()] == [5.0, STANDBY_SECONDS, 5.0]
    assert scheduled == [first, first]
    assert beat.beat_last_seen() is not None
    first.close()
    assert second.tick() == 5.0
    assert scheduled == [first, first, second]


def test_on_redis_a_takeover_in_the_middle_of_a_renewal_wins(redis_cache, monkeypatch):
    """The race that read-then-write loses: the holder's lease expires and a standby takes it
    right after the holder read its own token back (or right before an atomic script runs,
    the latest moment a script can be raced). The holder must not overwrite nor delete the
    standby's lease."""
    client, key = redis_cache
    assert beat.beat_lease_take(owner="slow")

    def takeover():
        client.set(key, "standby", ex=beat.LEASE_SECONDS)

    class RacedClient:
        def __getattr__(self, name):
            command = getattr(client, name)

            def call(*args, **kwargs):
                if name in {"eval", "evalsha"}:
                    takeover()
                result = command(*args, **kwargs)
                if name == "get":
                    takeover()
                return result

            return call

    monkeypatch.setattr(beat, "_redis", lambda: (RacedClient(), key))
    assert not beat.beat_lease_take(owner="slow")
    assert client.get(key) == b"standby"
    client.set(key, "slow", ex=beat.LEASE_SECONDS)
    beat.beat_lease_release(owner="slow")
    assert client.get(key) == b"standby"

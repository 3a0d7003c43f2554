import pytest
from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

from billingsite.celery import app
from billingsite.ops.beat import HEARTBEAT_KEY, LOCK_KEY, STANDBY_SECONDS, LockedDatabaseScheduler


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
    assert cache.get(LOCK_KEY) == first.lease_owner
    assert cache.get(HEARTBEAT_KEY) is not None

    # The first beat stops cleanly: it hands the lease back and the second one takes over.
    first.close()
    assert second.tick() == 5.0
    assert first.tick() == STANDBY_SECONDS
    assert scheduled == [first, first, second]


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

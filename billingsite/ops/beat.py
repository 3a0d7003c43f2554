"""Exactly one beat: a lease in the shared cache (Redis in production).

Two beats would send every periodic task twice: the month-end run is idempotent, but nobody
wants two runs racing, nor every reminder e-mailed twice. The beat holding the lease renews it
on each tick (at most every 5 s) and writes when it last ticked, which /readyz reads. A second
beat started by mistake finds the lease taken and schedules nothing; if the first one dies, the
second takes over once the lease expires (LEASE_SECONDS).

The cache has no compare-and-set, so renewing is "read, then write": two beats could both hold
the lease only if one paused for more than LEASE_SECONDS between those two steps.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "billing:beat:lock"
HEARTBEAT_KEY = "billing:beat:heartbeat"
LEASE_SECONDS = 60
# How long a standby beat sleeps before asking for the lease again.
STANDBY_SECONDS = 10


def beat_lease_take(*, owner: str) -> bool:
    """True when `owner` holds the lease (just taken or renewed)."""
    if cache.add(LOCK_KEY, owner, LEASE_SECONDS):
        return True
    if cache.get(LOCK_KEY) == owner:
        cache.set(LOCK_KEY, owner, LEASE_SECONDS)
        return True
    return False


def beat_lease_release(*, owner: str) -> None:
    if cache.get(LOCK_KEY) == owner:
        cache.delete(LOCK_KEY)


def beat_last_seen() -> float | None:
    """Unix time of the lease holder's last tick, None when no beat ran recently."""
    return cache.get(HEARTBEAT_KEY)


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_held = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        held = beat_lease_take(owner=self.lease_owner)
        if held != self.lease_held:
            if held:
                logger.info("beat lock taken by %s: this beat schedules", self.lease_owner)
            else:
                logger.warning(
                    "beat lock held by %s: this beat (%s) schedules nothing",
                    cache.get(LOCK_KEY),
                    self.lease_owner,
                )
            self.lease_held = held
        if not held:
            return STANDBY_SECONDS
        cache.set(HEARTBEAT_KEY, time.time(), LEASE_SECONDS * 10)
        return min(super().tick(*args, **kwargs), LEASE_SECONDS / 4)

    def close(self):
        beat_lease_release(owner=self.lease_owner)
        super().close()

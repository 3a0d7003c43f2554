"""Exactly one beat: a lease in the shared cache (Redis in production).

Two beats would send every periodic task twice: the month-end run is idempotent, but nobody
wants two runs racing, nor every reminder e-mailed twice. The beat holding the lease renews it
on each tick (at most every 15 s) and writes when it last ticked, which /readyz reads. A second
beat started by mistake finds the lease taken and schedules nothing; if the first one dies, the
second takes over once the lease expires (LEASE_SECONDS).

Taking, renewing and releasing are compare-and-set on Redis: taking is `SET key token NX EX`,
renewing and releasing are Lua scripts that act only while the key still holds this beat's
token (one atomic step in Redis). A beat that paused past its lease (a stopped VM, a long GC)
and lost it to another beat therefore cannot extend or delete the other's lease when it wakes:
it finds a foreign token and goes on standby. Other cache backends (the embedded per-process
default, files) have no such primitive: there a lock inside the process makes the steps
atomic for the beats of one process, which is all those backends can share anyway.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "billing:beat:lock"
HEARTBEAT_KEY = "billing:beat:heartbeat"
LEASE_SECONDS = 60
# How long a standby beat sleeps before asking for the lease again.
STANDBY_SECONDS = 10

# KEYS[1] the lease, ARGV[1] this beat's token, ARGV[2] the lease in seconds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'XX', 'EX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_local_lock = threading.Lock()


def _redis():
    """(client, key) when the cache is Redis, else None."""
    backend = caches["default"]  # `cache` is a proxy: isinstance needs the backend itself
    if not isinstance(backend, RedisCache):
        return None
    key = backend.make_and_validate_key(LOCK_KEY)
    return backend._cache.get_client(key, write=True), key


def beat_lease_take(*, owner: str) -> bool:
    """True when `owner` holds the lease (just taken or renewed)."""
    redis = _redis()
    if redis is not None:
        client, key = redis
        if client.set(key, owner, nx=True, ex=LEASE_SECONDS):
            return True
        return bool(client.eval(_RENEW, 1, key, owner, LEASE_SECONDS))
    with _local_lock:
        if cache.add(LOCK_KEY, owner, LEASE_SECONDS):
            return True
        if cache.get(LOCK_KEY) == owner:
            cache.set(LOCK_KEY, owner, LEASE_SECONDS)
            return True
        return False


def beat_lease_release(*, owner: str) -> None:
    redis = _redis()
    if redis is not None:
        client, key = redis
        client.eval(_RELEASE, 1, key, owner)
        return
    with _local_lock:
        if cache.get(LOCK_KEY) == owner:
            cache.delete(LOCK_KEY)


def beat_lease_holder() -> str | None:
    """Whose lease it is now (for the log line of a standby beat)."""
    redis = _redis()
    if redis is not None:
        client, key = redis
        holder = client.get(key)
        return holder.decode() if isinstance(holder, bytes) else holder
    return cache.get(LOCK_KEY)


def beat_last_seen() -> float | None:
    """Unix time of the lease holder's last tick, None when no beat ran recently."""
    return cache.get(HEARTBEAT_KEY)


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # None until the first tick: which of the two a beat is gets logged once at start (a
        # second beat that never held the lease says so on its first tick, not never).
        self.lease_held: bool | None = None
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        held = beat_lease_take(owner=self.lease_owner)
        if held != self.lease_held:
            if held:
                logger.info("beat lock taken by %s: this beat schedules", self.lease_owner)
            else:
                logger.warning(
                    "beat lock held by %s: this beat (%s) schedules nothing",
                    beat_lease_holder(),
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

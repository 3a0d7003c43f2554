"""Request-class admission control for the `web` process: the short machine-facing calls
(quote, health checks, metrics, provider notifications) always run; every other request
(portal pages, admin, the estimate, exports) first takes one of a fixed number of slots shared
by all of gunicorn's worker processes.

Why: on a host with few cores, a 2 ms quote that waits behind 20-30 ms pages waits for the
whole queue. With threaded workers holding every connection, a page beyond the slots waits on
a semaphore without burning CPU while the quotes go straight to the cores; a quote then waits
for at most the pages holding slots (bench/README.md, "Admission control").

The slots are created by the gunicorn master before it forks (`slots_install`, from
`billingsite.ops.gunicorn.on_starting`), so every worker inherits the same semaphore. Without
them (runserver, tests, Celery) `installed_slots()` is None and nothing waits. This module
imports only the standard library: the master imports it without Django.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable

# The URL names (namespace:name) of the requests that never wait for a slot: short, called by
# machines that have timeouts of their own, and cheaper than a slot's page. Everything else,
# a route added tomorrow included, waits; a path that matches no URL is a cheap 404 and passes.
LIGHT_ROUTES = frozenset(
    {
        "healthz",
        "readyz",
        # An operator needs the scrape most when the host is saturated.
        "metrics",
        "quote-create",
        # Not the usage push: one carries up to 10,000 rows (~0.3 s of work, a hundred quotes'
        # worth; bench/README.md, "Usage ingest"), which in the light pool's one worker would
        # hold up every quote behind it.
        "payments:alipay-notify",
        "payments:wechat-notify",
        "mail:events",
    }
)


class SlotsBusy(Exception):
    """Every slot stayed taken for the whole wait."""


class HeavySlots:
    """`count` slots shared by the processes forked after it is built.

    A counting semaphore does the waiting (with a timeout, the GIL released). Each slot also
    has a lock and an owner pid in shared memory, so that the master can give back the slots
    of a worker that was killed while holding them (`reclaim`): a semaphore alone would lose
    them for good. A process killed in the microseconds between taking the semaphore and
    writing its pid still loses one slot; that window is the price of having no lock that a
    dead process could leave held.
    """

    def __init__(self, count: int, *, wait_seconds: float):
        if count < 1:
            raise ValueError("at least one slot")
        context = multiprocessing.get_context("fork")
        self.count = count
        self.wait_seconds = wait_seconds
        self._free = context.BoundedSemaphore(count)
        self._slot_locks = [context.Lock() for _ in range(count)]
        self._owners = context.RawArray("i", count)

    def acquire(self) -> Callable[[], None]:
        """Wait up to `wait_seconds` for a slot; return the function that gives it back (once,
        however often it is called). Raises SlotsBusy when the wait runs out."""
        if not self._free.acquire(timeout=self.wait_seconds):
            raise SlotsBusy
        index = self._claim()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._owners[index] = 0
            self._slot_locks[index].release()
            self._free.release()

        return release

    def _claim(self) -> int:
        # The semaphore admitted at most `count` holders, so one of the locks is free.
        for index, lock in enumerate(self._slot_locks):
            if lock.acquire(False):
                self._owners[index] = os.getpid()
                return index
        self._free.release()
        raise SlotsBusy

    def taken(self) -> int:
        return sum(1 for owner in self._owners if owner)

    def reclaim(self, pid: int) -> int:
        """Give back the slots process `pid` held when it died; how many there were. Only for
        a process that is gone (the master calls it when it reaps a worker)."""
        reclaimed = 0
        for index in range(self.count):
            if self._owners[index] == pid:
                self._owners[index] = 0
                self._slot_locks[index].release()
                self._free.release()
                reclaimed += 1
        return reclaimed


_slots: HeavySlots | None = None
_light_slots: HeavySlots | None = None


def slots_install(count: int, *, light: int = 0, wait_seconds: float) -> HeavySlots | None:
    """Called once in the gunicorn master, before the workers fork. 0 slots: admission off.
    `light` > 0 also caps the light requests running at once (their own slots: they wait only
    for each other), so that a flood of quotes cannot take every core from the pages."""
    global _slots, _light_slots  # noqa: PLW0603 - set once per process, inherited by the workers
    _slots = HeavySlots(count, wait_seconds=wait_seconds) if count > 0 else None
    _light_slots = HeavySlots(light, wait_seconds=wait_seconds) if count > 0 and light > 0 else None
    return _slots


def installed_slots() -> HeavySlots | None:
    return _slots


def installed_light_slots() -> HeavySlots | None:
    return _light_slots


_light_routes_only = False


def serve_light_routes_only() -> None:
    """Called in a light-pool worker after the fork (`billingsite.ops.gunicorn.post_fork`): it
    answers only `LIGHT_ROUTES`, so a page sent to the light port by mistake (or by someone who
    can reach it) cannot take the light calls' place."""
    global _light_routes_only  # noqa: PLW0603 - set once per worker process
    _light_routes_only = True


def light_routes_only() -> bool:
    return _light_routes_only

"""Per-test wall time on a real clock: `pytest -p tests.timing_plugin` (or TEST_TIMINGS=path).

`--durations` reads the clock freezegun fakes inside the tests; this plugin holds the real
`time.perf_counter` in a closure (freezegun swaps module attributes, not closed-over references)
and appends `nodeid, wall seconds, worker, end time, CPU seconds of this process` (tab
separated) for setup+call+teardown of each test to `$TEST_TIMINGS.<worker>`.
"""

import os
import time

import pytest


def _real(clock):
    def now() -> float:
        return clock()

    return now


_now = _real(time.perf_counter)
_cpu = _real(time.process_time)
_epoch = _real(time.time)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started, cpu_started = _now(), _cpu()
    yield
    elapsed, cpu = _now() - started, _cpu() - cpu_started
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = os.environ.get("TEST_TIMINGS", "var/test-timings.tsv")
    with open(f"{path}.{worker}", "a") as out:
        out.write(f"{item.nodeid}\t{elapsed:.3f}\t{worker}\t{_epoch():.1f}\t{cpu:.3f}\n")

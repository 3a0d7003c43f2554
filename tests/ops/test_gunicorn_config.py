"""The `web` process's gunicorn settings (billingsite/ops/gunicorn.py): threaded workers with
admission control by default, sync workers on request, and no access line built when nobody
logs it.

The module sets process environment variables when imported (the metrics directory), so each
check runs it in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """
import json, os
import billingsite.ops.gunicorn as g
print(json.dumps({"workers": g.workers, "worker_class": g.worker_class, "threads": g.threads,
                  "cpus": os.cpu_count(), "conn_max_age": os.environ["DB_CONN_MAX_AGE"],
                  "heavy_slots": g.heavy_slots, "light_slots": g.light_slots,
                  "heavy_wait": g.heavy_wait, "bind": g.bind,
                  "heavy_workers": g.heavy_workers, "light_workers": g.light_workers,
                  "switch_interval_ms": g.switch_interval_ms, "max_requests": g.max_requests,
                  "heavy_nice": g.heavy_nice}))
"""


def gunicorn_settings(**env: str) -> dict:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WEB_")
        and key not in {"DB_CONN_MAX_AGE", "PROMETHEUS_MULTIPROC_DIR", "BIND", "PORT", "LIGHT_BIND"}
    }
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_default_is_two_sync_workers_per_core_plus_one_without_admission_control():
    found = gunicorn_settings()
    assert found["worker_class"] == "sync"
    assert (found["heavy_workers"], found["threads"]) == (2 * found["cpus"] + 1, 1)
    # No light pool unless LIGHT_BIND asks for one (an upgrade binds no new port by itself).
    assert (found["light_workers"], found["heavy_nice"]) == (0, 0)
    assert (found["workers"], found["bind"]) == (found["heavy_workers"], "0.0.0.0:8000")
    # Workers are recycled, rarely (each new one costs a second or more of CPU).
    assert found["max_requests"] == 20000
    assert (found["heavy_slots"], found["light_slots"]) == (0, 0)
    assert found["conn_max_age"] == "60"


def test_gthread_is_one_threaded_process_per_core_with_admission_control():
    found = gunicorn_settings(WEB_WORKER_CLASS="gthread")
    assert found["worker_class"] == "gthread"
    assert (found["workers"], found["threads"]) == (found["cpus"], 16)
    # Its slots keep the light calls apart: no second pool, one port.
    assert (found["light_workers"], found["bind"]) == (0, "0.0.0.0:8000")
    found = gunicorn_settings(WEB_WORKER_CLASS="gthread", LIGHT_BIND="0.0.0.0:8001")
    assert (found["light_workers"], found["bind"]) == (0, "0.0.0.0:8000")
    assert (found["heavy_slots"], found["light_slots"]) == (2 * found["cpus"], found["cpus"])
    assert found["heavy_wait"] == 10
    assert found["switch_interval_ms"] == 1
    assert found["conn_max_age"] == "60"


def test_sync_workers_are_two_per_core_and_one_without_admission_control():
    found = gunicorn_settings(WEB_WORKER_CLASS="sync")
    assert found["heavy_workers"] == 2 * found["cpus"] + 1
    assert found["threads"] == 1
    assert (found["heavy_slots"], found["light_slots"]) == (0, 0)
    assert found["switch_interval_ms"] == 5


def test_gthread_without_slots_keeps_pythons_switch_interval():
    found = gunicorn_settings(WEB_WORKER_CLASS="gthread", WEB_HEAVY_SLOTS="0")
    assert (found["worker_class"], found["threads"]) == ("gthread", 16)
    assert (found["heavy_slots"], found["light_slots"]) == (0, 0)
    assert found["switch_interval_ms"] == 5


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WEB_WORKER_CLASS": "sync"}, ("sync", 1)),
        ({"WEB_WORKER_CLASS": "sync", "WEB_CONCURRENCY": "3"}, ("sync", 1)),
        ({"WEB_WORKER_CLASS": "gthread"}, ("gthread", 16)),
        (
            {"WEB_WORKER_CLASS": "gthread", "WEB_THREADS": "32", "WEB_CONCURRENCY": "3"},
            ("gthread", 32),
        ),
    ],
)
def test_the_environment_chooses(env, expected):
    found = gunicorn_settings(**env)
    assert (found["worker_class"], found["threads"]) == expected
    if "WEB_CONCURRENCY" in env:
        assert found["heavy_workers"] == int(env["WEB_CONCURRENCY"])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PORT": "9000"}, (0, "0.0.0.0:9000")),
        ({"PORT": "9000", "LIGHT_BIND": "0.0.0.0:9001"}, (1, ["0.0.0.0:9000", "0.0.0.0:9001"])),
        (
            {"BIND": "127.0.0.1:8000", "LIGHT_BIND": "10.0.0.5:7000", "WEB_LIGHT_WORKERS": "2"},
            (2, ["127.0.0.1:8000", "10.0.0.5:7000"]),
        ),
        ({"LIGHT_BIND": "0.0.0.0:8001", "WEB_LIGHT_WORKERS": "0"}, (0, "0.0.0.0:8000")),
        # The same port as the main listener: the two could not be told apart, so no pool.
        ({"BIND": "127.0.0.1:8000", "LIGHT_BIND": "10.0.0.5:8000"}, (0, "127.0.0.1:8000")),
        (
            {"BIND": "unix:/run/billing/web.sock", "LIGHT_BIND": "unix:/run/billing/light.sock"},
            (1, ["unix:/run/billing/web.sock", "unix:/run/billing/light.sock"]),
        ),
    ],
)
def test_the_light_pool_listens_on_its_own_address(env, expected):
    found = gunicorn_settings(**env)
    assert (found["light_workers"], found["bind"]) == expected
    assert found["workers"] == found["heavy_workers"] + found["light_workers"]
    assert found["heavy_nice"] == (3 if found["light_workers"] else 0)


ACCESS = """
import logging
from unittest import mock
from gunicorn.config import Config
import billingsite.ops.gunicorn as g

cfg = Config()
cfg.set("logconfig_dict", g.logconfig_dict)
log = g.AccessLogWhenEnabled(cfg)
with mock.patch.object(log, "atoms", return_value={}) as atoms:
    log.access(mock.Mock(), mock.Mock(), {}, mock.Mock())
    skipped = atoms.call_count
    logging.getLogger("gunicorn.access").setLevel(logging.INFO)
    log.access(mock.Mock(), mock.Mock(), {}, mock.Mock())
    print(skipped, atoms.call_count)
"""


def test_no_access_line_is_built_for_a_logger_that_drops_it():
    result = subprocess.run(
        [sys.executable, "-c", ACCESS], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # Skipped at WARNING (the setting), built once the access logger is turned to INFO.
    assert result.stdout.split() == ["0", "1"]


HOOKS = """
import os, sys
from unittest import mock
import billingsite.ops.gunicorn as g
from billingsite.ops import admission

server = mock.Mock()
g.on_starting(server)
slots = admission.installed_slots()
light = admission.installed_light_slots()
print(slots.count if slots else 0, light.count if light else 0, slots.wait_seconds if slots else 0)
server.WORKERS = {}
worker = mock.Mock(sockets=[])
g.pre_fork(server, worker)
g.post_fork(server, worker)
print(round(sys.getswitchinterval() * 1e6))
if slots:
    # A worker that dies holding a slot: the master gives it back when it reaps the worker.
    pid = os.fork()
    if pid == 0:
        slots.acquire()
        os._exit(0)
    os.waitpid(pid, 0)
    taken = slots.taken()
    g.child_exit(server, mock.Mock(pid=pid))
    print(taken, slots.taken())
"""


def gunicorn_hooks(folder: Path, **env: str) -> list[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("WEB_")}
    result = subprocess.run(
        [sys.executable, "-c", HOOKS],
        cwd=ROOT,
        env={**clean, **env, "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus")},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\n")[:-1]


def test_the_master_installs_the_slots_and_the_workers_the_switch_interval(tmp_path):
    assert gunicorn_hooks(
        tmp_path,
        WEB_WORKER_CLASS="gthread",
        WEB_HEAVY_SLOTS="3",
        WEB_LIGHT_SLOTS="4",
        WEB_HEAVY_WAIT="2.5",
        WEB_SWITCH_INTERVAL_MS="0.5",
    ) == ["3 4 2.5", "500", "1 0"]


def test_no_slots_no_admission_control(tmp_path):
    assert gunicorn_hooks(tmp_path, WEB_HEAVY_SLOTS="0", WEB_SWITCH_INTERVAL_MS="5") == [
        "0 0 0",
        "5000",
    ]


POOLS = """
import json, os, sys
from unittest import mock
import billingsite.ops.gunicorn as g
from billingsite.ops import admission

server = mock.Mock(WORKERS={}, worker_age=0, spec=["WORKERS", "worker_age", "log"])
# As an inherited socket (USR2, systemd) reports it: the resolved host, IPv6's 4-tuple.
main_socket = mock.Mock(getsockname=lambda: ("127.0.0.1", 8100))
light_socket = mock.Mock(getsockname=lambda: ("::1", 8101, 0, 0))


def spawn():
    # What gunicorn's Arbiter.spawn_worker does around the hook.
    server.worker_age += 1
    worker = mock.Mock(sockets=[main_socket, light_socket], age=server.worker_age)
    g.pre_fork(server, worker)
    return worker


spawned = []
for pid in range(1, g.workers + 1):
    worker = spawn()
    server.WORKERS[pid] = worker
    spawned.append(worker.pool)
# A light worker dies (recycled, killed): its replacement goes to the light pool.
del server.WORKERS[g.workers]
replacement = spawn()
server.WORKERS[g.workers] = replacement
# HUP: a whole new set is forked while the old one still runs, then the old one is stopped.
g.on_reload(server)
reloaded = []
for pid in range(100, 100 + g.workers):
    worker = spawn()
    server.WORKERS[pid] = worker
    reloaded.append(worker.pool)
# In the child, after the fork: each pool keeps only its own socket.
pid = os.fork()
if pid == 0:
    g.post_fork(server, server.WORKERS[1])
    main_view = (server.WORKERS[1].sockets == [main_socket], admission.light_routes_only(),
                 os.nice(0))
    g.post_fork(server, replacement)
    light_view = (replacement.sockets == [light_socket], admission.light_routes_only(),
                  replacement.max_requests == sys.maxsize)
    print(json.dumps({"main": main_view, "light": light_view}))
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps({"spawned": spawned, "replacement": replacement.pool, "reloaded": reloaded}))
"""


def test_each_new_worker_fills_the_pool_that_is_short_and_listens_on_its_socket(tmp_path):
    clean = {key: value for key, value in os.environ.items() if not key.startswith("WEB_")}
    result = subprocess.run(
        [sys.executable, "-c", POOLS],
        cwd=ROOT,
        env={
            **clean,
            "WEB_CONCURRENCY": "3",
            "WEB_LIGHT_WORKERS": "2",
            "WEB_HEAVY_NICE": "5",
            "BIND": "127.0.0.1:8100",
            "LIGHT_BIND": "[::1]:8101",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    child, master = (json.loads(line) for line in result.stdout.splitlines())
    # The main pool first (at start the light workers are the youngest: TTOU stops the oldest).
    assert master == {
        "spawned": ["main", "main", "main", "light", "light"],
        "replacement": "light",
        # After a reload the new set has both pools again (not five light workers).
        "reloaded": ["main", "main", "main", "light", "light"],
    }
    # A main-pool worker: the main socket, every route, a lower CPU priority (nice 5 here).
    assert child["main"] == [True, False, os.nice(0) + 5]
    # A light-pool worker: the light socket, only the light routes, never recycled.
    assert child["light"] == [True, True, True]

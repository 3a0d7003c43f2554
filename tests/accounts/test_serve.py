"""`manage.py serve` (the end of `make run`) leaves nothing running behind it: not when it is
interrupted, not when `make` above it is killed (make does not pass signals on)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accounts.management.commands.serve import stop_children

ROOT = Path(__file__).resolve().parents[2]


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    running = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def in_own_group(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, preexec_fn=lambda: os.setpgid(0, 0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stopping_terminates_then_kills_every_process_group():
    polite = in_own_group(["sleep", "60"])
    # A child that ignores SIGTERM, and a grandchild in its group (a worker's pool process).
    stubborn = in_own_group(["sh", "-c", "trap '' TERM; sleep 60 & wait"])
    assert wait_until(lambda: descendants(stubborn.pid), 5)
    family = {polite.pid, stubborn.pid} | descendants(stubborn.pid)

    started = time.monotonic()
    stop_children([polite, stubborn], grace=1)

    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert wait_until(lambda: not alive(family), 5), alive(family)


@pytest.mark.celery_worker
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_make_above_serve_stops_the_web_server_and_the_worker(tmp_path):
    env = {
        **os.environ,
        "BILLING_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "billingsite.settings",
    }
    serve = [sys.executable, "manage.py", "serve", "--addr", "127.0.0.1:0"]
    # Stands in for make: runs serve as its child and is killed without passing anything on.
    make = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess; subprocess.run({serve!r})"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    family: set[int] = set()
    try:

        def started() -> bool:
            commands = []
            for pid in descendants(make.pid):
                try:
                    commands.append((Path("/proc") / str(pid) / "cmdline").read_bytes())
                except OSError:
                    pass
            return any(b"runserver" in c for c in commands) and any(
                b"celery" in c for c in commands
            )

        assert wait_until(started, 60), "serve did not start its children"
        family |= descendants(make.pid)
        make.kill()
        make.wait()
        # serve hears of it (SIGTERM from the kernel), gives the worker its grace period.
        assert wait_until(lambda: not alive(family), 40), alive(family)
    finally:
        make.kill()
        for pid in alive(family | descendants(make.pid)):
            os.kill(pid, signal.SIGKILL)

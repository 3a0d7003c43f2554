"""`manage.py serve` (the last step of `make run`): the web server and a Celery worker with beat.

However it ends, nothing it started outlives it:
- Ctrl-C, SIGTERM or SIGHUP (a closed terminal): each child's whole process group (the worker
  with its pool processes) gets SIGTERM, then SIGKILL after a grace period.
- its parent dying (`make` killed by a signal never forwards it): Linux tells this process with
  SIGTERM (PR_SET_PDEATHSIG), which stops the children as above.
- this process killed outright (SIGKILL): each child is told the same way and stops itself.
- one child exiting: the other is stopped too, so a half-running stack never lingers.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from billingsite.devserver import browser_url, ready_banner, wait_until_up

# Seconds a child has to stop after SIGTERM (the worker finishing a task) before SIGKILL.
GRACE_SECONDS = 10
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _child_setup() -> None:
    # Runs in the child between fork and exec: its own process group (the terminal's Ctrl-C
    # reaches only this command, which stops the children in order), and death with us.
    os.setpgid(0, 0)
    _die_with_parent()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_children(children: list[subprocess.Popen], *, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every child's process group, wait up to `grace` seconds, SIGKILL what is left
    (the groups too: a pool process whose parent was killed would stay behind)."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        _signal_group(child, signal.SIGKILL)
        child.wait()


class Command(BaseCommand):
    help = "Run the web server and a Celery worker with beat; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("BIND", "127.0.0.1:8000"))

    def handle(self, *args, addr: str, **options):
        parent = os.getppid()
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before we asked to be told
            return
        python = sys.executable
        commands = [
            [python, "manage.py", "runserver", addr, "--noreload"],
            [
                python,
                "-m",
                "celery",
                "-A",
                "billingsite",
                "worker",
                "--beat",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ],
        ]
        # One cache for the web server and the worker's beat, still without a server, so
        # /readyz sees beat's heartbeat (production shares Redis through CACHE_URL).
        env = dict(os.environ)
        env.setdefault("CACHE_URL", f"file://{settings.VAR_DIR / 'cache'}")
        children: list[subprocess.Popen] = []
        stopping = []

        def stop(*_):
            if stopping:  # a second Ctrl-C while stopping: the first one is already at it
                return
            stopping.append(True)
            stop_children(children)
            sys.exit(0)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        started = time.time()
        for command in commands:
            children.append(subprocess.Popen(command, env=env, preexec_fn=_child_setup))
        # Last, below the children's start-up output: where to go and how to log in.
        up = wait_until_up(
            url=browser_url(addr), cache_url=env["CACHE_URL"], started=started, children=children
        )
        self.stdout.write(ready_banner(addr=addr, up=up))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        stop()

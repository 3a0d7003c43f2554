import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from billingsite.devserver import browser_url, ready_banner, wait_until_up


class Command(BaseCommand):
    help = "Run the web server and a Celery worker with beat; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("BIND", "127.0.0.1:8000"))

    def handle(self, *args, addr: str, **options):
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
        started = time.time()
        children = [subprocess.Popen(command, env=env) for command in commands]

        def stop(*_):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            sys.exit(0)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Last, below the children's start-up output: where to go and how to log in.
        up = wait_until_up(
            url=browser_url(addr), cache_url=env["CACHE_URL"], started=started, children=children
        )
        self.stdout.write(ready_banner(addr=addr, up=up))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        stop()

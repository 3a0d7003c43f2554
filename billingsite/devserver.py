"""The last lines `manage.py serve` (`make run`) prints: once the web server answers and the
worker's beat has ticked, the address to open and the demo logins, below the console e-mails
and the Celery banner instead of scrolled away under them."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

from django.contrib.auth import get_user_model
from django.utils.module_loading import import_string

from billingsite.ops.beat import HEARTBEAT_KEY
from billingsite.ops.config import parse_cache_url

ALL_ADDRESSES = {"0.0.0.0", "::", "[::]", ""}


def browser_url(addr: str) -> str:
    """The address to open for runserver's `addr` ("8000", "127.0.0.1:8000", "0.0.0.0:80")."""
    host, _, port = addr.rpartition(":") if ":" in addr else ("", "", addr)
    if host in ALL_ADDRESSES:
        host = "127.0.0.1"
    return f"http://{host}:{port}/"


def _server_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}healthz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _beat_ticked_since(cache_url: str, *, started: float) -> bool:
    """True when the worker's beat wrote its heartbeat (`billingsite.ops.beat`, what /readyz
    reads) into the cache the children share, after `started`: a heartbeat left by an earlier
    `make run` does not count. Read directly, so waiting logs no 503 of /readyz."""
    config = parse_cache_url(cache_url)
    backend = import_string(config.pop("BACKEND"))
    cache = backend(config.pop("LOCATION", ""), config)
    try:
        seen = cache.get(HEARTBEAT_KEY)
    except Exception:  # noqa: BLE001 - the cache server is not up yet: not ready
        return False
    finally:
        cache.close()
    return seen is not None and seen >= started


def wait_until_up(
    *, url: str, cache_url: str, started: float, children, timeout: float = 90.0
) -> bool:
    """Wait until the server answers and the worker's beat ticked; False after `timeout` or
    when a child exited (its own output says why)."""
    deadline = started + timeout
    while time.time() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        if _server_answers(url) and _beat_ticked_since(cache_url, started=started):
            return True
        time.sleep(0.5)
    return False


def demo_logins() -> str:
    """The demo staff logins (`manage.py demo_setup`), when they still have the demo password."""
    password = os.environ.get("DEMO_PASSWORD", "billing-demo")
    admin = get_user_model().objects.filter(username="admin").first()
    if admin is None or not admin.check_password(password):
        return ""
    return f"Demo staff logins, password '{password}': admin (superuser), manager, clerk, auditor"


def ready_banner(*, addr: str, up: bool) -> str:
    url = browser_url(addr)
    lines = [
        "",
        "=" * 72,
        f"Open {url}  (admin: {url}admin/, API docs: {url}api/docs/)",
    ]
    if addr.rpartition(":")[0] in ALL_ADDRESSES and ":" in addr:
        lines.append("Listening on every address: other machines use this machine's name or IP.")
    logins = demo_logins()
    if logins:
        lines.append(logins)
    if not up:
        lines.append(f"The worker has not reported yet: see {url}readyz and the output above.")
    lines += ["Ctrl-C stops the web server and the worker.", "=" * 72]
    return "\n".join(lines)

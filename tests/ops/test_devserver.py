"""`make run`'s last lines: printed once the server answers and the beat ticked (not a
heartbeat an earlier run left in the cache), with the address to open and the demo logins."""

import time

import pytest
from django.core.cache.backends.filebased import FileBasedCache

from billingsite import devserver
from billingsite.ops.beat import HEARTBEAT_KEY
from tests.factories import StaffFactory


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("8080", "http://127.0.0.1:8080/"),
        ("0.0.0.0:8000", "http://127.0.0.1:8000/"),
        ("[::]:9000", "http://127.0.0.1:9000/"),
        ("billing.local:8001", "http://billing.local:8001/"),
    ],
)
def test_browser_url(addr, url):
    assert devserver.browser_url(addr) == url


def test_only_a_heartbeat_written_after_the_start_counts(tmp_path):
    cache_url = f"file://{tmp_path}"
    cache = FileBasedCache(str(tmp_path), {})
    started = time.time()
    assert not devserver._beat_ticked_since(cache_url, started=started)
    cache.set(HEARTBEAT_KEY, started - 30)  # left by an earlier `make run`
    assert not devserver._beat_ticked_since(cache_url, started=started)
    cache.set(HEARTBEAT_KEY, started + 0.5)
    assert devserver._beat_ticked_since(cache_url, started=started)


class _Exited:
    def poll(self):
        return 1


def test_waiting_stops_when_a_child_exited(tmp_path):
    started = time.time()
    up = devserver.wait_until_up(
        url="http://127.0.0.1:9/",
        cache_url=f"file://{tmp_path}",
        started=started,
        children=[_Exited()],
    )
    assert up is False and time.time() - started < 5


@pytest.mark.django_db
def test_banner_ends_with_the_address_and_the_demo_logins(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert "Demo staff logins" not in devserver.ready_banner(addr="127.0.0.1:8000", up=True)
    admin = StaffFactory(username="admin")
    admin.set_password("billing-demo")
    admin.save()

    banner = devserver.ready_banner(addr="0.0.0.0:8000", up=True).splitlines()

    assert banner[2] == (
        "Open http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/, "
        "API docs: http://127.0.0.1:8000/api/docs/)"
    )
    assert "Listening on every address" in banner[3]
    assert banner[4] == (
        "Demo staff logins, password 'billing-demo': admin (superuser), manager, clerk, auditor"
    )
    late = devserver.ready_banner(addr="127.0.0.1:8000", up=False)
    assert "The worker has not reported yet: see http://127.0.0.1:8000/readyz" in late

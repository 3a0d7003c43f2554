"""The login backend with the user's read compiled (billingsite.auth_backend): logins name it,
sessions of Django's ModelBackend keep their user, an inactive user is logged out, a wrong
password is checked once and counted once by django-axes."""

import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import BACKEND_SESSION_KEY, signals
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billingsite import auth_backend
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db

OURS = "billingsite.auth_backend.CompiledModelBackend"
DJANGOS = "django.contrib.auth.backends.ModelBackend"


def login(client, username, password=PASSWORD):
    return client.post(reverse("portal:login"), {"username": username, "password": password})


def test_a_login_names_this_backend_and_reads_its_user_compiled(client, acme_user):
    assert login(client, "alice").status_code == 302
    assert client.session[BACKEND_SESSION_KEY] == OURS
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("portal:invoice-list")).status_code == 200
    reads = [q["sql"] for q in queries if 'FROM "auth_user"' in q["sql"]]
    assert len(reads) == 1 and "LIMIT 1" in reads[0]
    if connection.vendor == "postgresql":  # compiled, not the ORM's get() (LIMIT 21)
        assert [c for c in auth_backend._user._compiled.values() if c is not None]


@pytest.mark.parametrize("backend", [OURS, DJANGOS])
def test_each_login_sees_its_own_customer_and_a_login_without_one_none(
    client, acme_user, rival_user, django_user_model, backend
):
    """The customer read with the user (this backend) or on its own (Django's backend's
    sessions) is the login's: alice sees Acme, bob Rival, a staff login the no-customer page."""
    for user, customer in ((acme_user, "Acme"), (rival_user, "Rival Messaging Co")):
        client.force_login(user, backend=backend)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("portal:invoice-list"))
        assert response.status_code == 200
        assert response.context["customer"] == user.customer_link.customer
        assert customer in response.context["customer"].name
        customer_reads = [
            q["sql"] for q in queries if re.search(r'(FROM|JOIN) "accounts_customer"', q["sql"])
        ]
        joined = [sql for sql in customer_reads if 'FROM "auth_user"' in sql]
        # Ours: one statement reads the user and the customer; Django's: one each.
        assert len(customer_reads) == 1 and len(joined) == (1 if backend == OURS else 0)
    staff = django_user_model.objects.create_user(username="finance", is_staff=True)
    client.force_login(staff, backend=backend)
    response = client.get(reverse("portal:invoice-list"))
    assert response.status_code == 403
    assert response.templates[0].name == "portal/no_customer.html"


def test_a_session_of_djangos_backend_keeps_its_user(client, acme_user):
    client.force_login(acme_user, backend=DJANGOS)
    assert client.session[BACKEND_SESSION_KEY] == DJANGOS
    response = client.get(reverse("portal:invoice-list"))
    assert response.status_code == 200 and response.context["user"] == acme_user


@pytest.mark.parametrize("backend", [OURS, DJANGOS])
def test_an_inactive_or_deleted_user_is_logged_out(client, acme_user, backend):
    client.force_login(acme_user, backend=backend)
    acme_user.is_active = False
    acme_user.save()
    login_page = reverse("portal:login")
    assert client.get(reverse("portal:invoice-list"))["Location"].startswith(login_page)
    acme_user.is_active = True
    acme_user.save()
    client.force_login(acme_user, backend=backend)
    acme_user.delete()
    assert client.get(reverse("portal:invoice-list"))["Location"].startswith(login_page)


class CountingHasher(MD5PasswordHasher):
    algorithm = "counting_md5"
    checks = 0

    def verify(self, password, encoded):
        CountingHasher.checks += 1
        return super().verify(password, encoded)


def test_a_wrong_password_is_checked_once_and_counted_once(client, acme_user, settings):
    settings.PASSWORD_HASHERS = ["tests.portal.test_auth_backend.CountingHasher"]
    acme_user.set_password(PASSWORD)
    acme_user.save()
    failures = []

    def failed(**kwargs):
        failures.append(kwargs["credentials"]["username"])

    signals.user_login_failed.connect(failed)
    try:
        CountingHasher.checks = 0
        assert login(client, "alice", "wrong password").status_code == 200
        assert CountingHasher.checks == 1
        assert failures == ["alice"]
        assert AccessAttempt.objects.get(username="alice").failures_since_start == 1
        CountingHasher.checks = 0
        assert login(client, "alice").status_code == 302
        assert CountingHasher.checks == 1
        assert failures == ["alice"]
    finally:
        signals.user_login_failed.disconnect(failed)

"""Logging in, lockout after repeated failures, password reset by e-mail, CSRF, logout."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import StaffFactory
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/login/"


def test_login_page_renders_with_csrf_and_reset_link(client):
    response = client.get(LOGIN)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body
    assert reverse("portal:password-reset") in body


def test_customer_logs_in_and_lands_on_the_invoice_list(client, acme_user):
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:invoice-list")
    assert client.get(reverse("portal:invoice-list")).status_code == 200


def test_login_follows_next(client, acme_user):
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD, "next": "/balance/"})
    assert response["Location"] == "/balance/"


def test_login_refuses_an_offsite_next(client, acme_user):
    response = client.post(
        LOGIN, {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("portal:invoice-list")


def test_wrong_password_shows_an_error_and_no_session(client, acme_user):
    response = client.post(LOGIN, {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get(reverse("portal:invoice-list")).status_code == 302


def test_axes_locks_out_after_the_failure_limit_even_with_the_right_password(client, acme_user):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5
    for _ in range(limit - 1):
        assert client.post(LOGIN, {"username": "alice", "password": "guess"}).status_code == 200
    locked = client.post(LOGIN, {"username": "alice", "password": "guess"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert b"locked after 5 failed attempts" in locked.content
    # While locked out, the right password does not open a session either.
    again = client.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert again.status_code == 429
    assert client.get(reverse("portal:invoice-list")).status_code == 302


def test_lockout_is_per_username_and_address(client, acme_user, rival_user):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "alice", "password": "guess"})
    # Another customer's login from the same address is not locked out by alice's guesses.
    response = client.post(LOGIN, {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302


def test_failures_below_the_limit_are_forgotten_after_a_success(client, acme_user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(LOGIN, {"username": "alice", "password": "guess"})
    assert client.post(LOGIN, {"username": "alice", "password": PASSWORD}).status_code == 302
    client.post(reverse("portal:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(LOGIN, {"username": "alice", "password": "guess"}).status_code == 200


def test_logout_is_a_post_and_ends_the_session(client, acme_user):
    client.force_login(acme_user)
    assert client.get(reverse("portal:logout")).status_code == 405
    response = client.post(reverse("portal:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:login")
    assert client.get(reverse("portal:invoice-list")).status_code == 302


def test_password_reset_by_email_end_to_end(client, acme_user):
    response = client.post(reverse("portal:password-reset"), {"email": acme_user.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:password-reset-done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [acme_user.email]
    assert message.subject == "Reset your billing password"
    link = re.search(r"http://testserver(/password-reset/[^/\s]+/[^/\s]+/)", message.body)[1]

    form = client.get(link, follow=True)
    assert form.status_code == 200
    assert b"Choose a new password" in form.content
    set_url = form.redirect_chain[-1][0]
    done = client.post(
        set_url,
        {"new_password1": "a brand new secret 42", "new_password2": "a brand new secret 42"},
    )
    assert done["Location"] == reverse("portal:password-reset-complete")
    assert (
        client.post(LOGIN, {"username": "alice", "password": "a brand new secret 42"}).status_code
        == 302
    )
    # The link works once.
    client.post(reverse("portal:logout"))
    assert b"This link has expired" in client.get(link, follow=True).content


def test_password_reset_mail_in_chinese(client, acme_user):
    client.cookies["django_language"] = "zh-hans"
    client.post(reverse("portal:password-reset"), {"email": acme_user.email})
    assert mail.outbox[0].subject == "重置账单中心密码"
    assert "alice，您好" in mail.outbox[0].body


def test_password_reset_sends_nothing_for_unknown_or_staff_addresses(client, acme_user):
    StaffFactory(username="finance", email="finance@example.com")
    for email in ["nobody@example.com", "finance@example.com"]:
        response = client.post(reverse("portal:password-reset"), {"email": email})
        # Same answer as for a customer: the page never tells who has a login.
        assert response["Location"] == reverse("portal:password-reset-done")
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (LOGIN, {"username": "alice", "password": PASSWORD}),
        ("/password-reset/", {"email": "user0@example.com"}),
        ("/logout/", {}),
        ("/i18n/setlang/", {"language": "zh-hans", "next": "/invoices/"}),
    ],
)
def test_every_form_needs_its_csrf_token(acme_user, url, data):
    client = Client(enforce_csrf_checks=True)
    if url == "/logout/":
        client.force_login(acme_user)
    assert client.post(url, data).status_code == 403
    assert mail.outbox == []


def test_forms_on_portal_pages_carry_csrf_tokens(client_for, acme_user, acme_invoice):
    client = client_for(acme_user)
    body = client.get(reverse("portal:invoice-detail", args=[acme_invoice.number])).content
    forms = body.count(b"<form")
    assert forms == 2  # language switch and logout
    assert body.count(b'name="csrfmiddlewaretoken"') == forms


def test_login_with_the_token_passes_csrf(acme_user):
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    token = client.cookies["csrftoken"].value
    response = client.post(
        LOGIN, {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_secure_cookies_and_hsts_when_debug_is_off():
    """Import the settings in a fresh interpreter with DEBUG=0, as production does."""
    code = (
        "import json; from billingsite import settings as s; print(json.dumps([s.DEBUG, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SESSION_COOKIE_HTTPONLY, s.SECURE_SSL_REDIRECT]))"
    )
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "test-only-secret"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    debug, session_secure, csrf_secure, hsts, httponly, ssl_redirect = __import__("json").loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert debug is False
    assert session_secure is True and csrf_secure is True and httponly is True
    assert hsts >= 31536000
    assert ssl_redirect is True

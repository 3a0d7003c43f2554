import json
import os
import subprocess
import sys

import pytest

from billingsite.ops.config import logging_config, parse_cache_url


def test_cache_url_redis_is_shared_with_a_prefix():
    assert parse_cache_url("redis://:pw@redis.internal:6379/1?key_prefix=billing-prod") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://:pw@redis.internal:6379/1",
        "KEY_PREFIX": "billing-prod",
        "OPTIONS": {},
    }


def test_cache_url_default_needs_no_server():
    assert parse_cache_url("locmem://") == {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache"
    }
    assert parse_cache_url("file:///var/cache/billing")["LOCATION"] == "/var/cache/billing"


def test_cache_url_with_an_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="memcached"):
        parse_cache_url("memcached://x")


def test_log_format_is_json_or_text():
    assert logging_config(log_format="json", level="INFO")["formatters"]["default"] == {
        "()": "billingsite.ops.logs.JsonFormatter"
    }
    with pytest.raises(ValueError):
        logging_config(log_format="xml", level="INFO")


def test_allowed_hosts_always_take_the_loopback_names_for_the_probes():
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "billing.example.com",
        "DJANGO_SETTINGS_MODULE": "billingsite.settings",
    }
    code = (
        "import django; django.setup(); from django.test import Client; "
        "from django.conf import settings as s; c = Client(); "
        "print(s.ALLOWED_HOSTS, [c.get('/healthz', HTTP_HOST=h).status_code "
        "for h in ('127.0.0.1:8000', 'localhost', 'billing.example.com', 'evil.example.com')])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip().splitlines()[-1] == (
        "['billing.example.com', '127.0.0.1', 'localhost', '[::1]'] [200, 200, 200, 400]"
    )


def test_email_url_sets_every_smtp_setting():
    env = {
        **os.environ,
        "EMAIL_URL": "smtp://mailer:s3cret@mail.example.com:587/?tls=True",
        "DJANGO_SETTINGS_MODULE": "billingsite.settings",
    }
    code = (
        "import json; from django.conf import settings as s; print(json.dumps([s.EMAIL_BACKEND,"
        " s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(output.strip().splitlines()[-1]) == [
        "django.core.mail.backends.smtp.EmailBackend",
        "mail.example.com",
        587,
        "mailer",
        "s3cret",
        True,
    ]

"""Settings helpers that need no configured Django: the cache URL, logging, Sentry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse


def parse_cache_url(url: str) -> dict:
    """One CACHES entry from a URL.

    redis://[:password@]host:6379/0 (rediss:// for TLS) -> Django's RedisCache;
    locmem:// -> per-process memory (the default: no server); file:///abs/path -> files shared
    by the processes of one host; dummy:// -> no cache.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme in {"redis", "rediss"}:
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        prefix = options.pop("key_prefix", "billing")
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": parsed._replace(query="").geturl(),
            "KEY_PREFIX": prefix,
            "OPTIONS": options,
        }
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if scheme == "file":
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": parsed.path,
        }
    if scheme == "dummy":
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    raise ValueError(
        f"CACHE_URL: unsupported scheme {scheme!r} (redis, rediss, locmem, file, dummy)"
    )


def logging_config(*, log_format: str, level: str) -> dict:
    """stderr only (the process manager collects it); `json` is one object per line."""
    if log_format not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    formatter = (
        {"()": "billingsite.ops.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Every request is one line from billingsite.ops.middleware (status, duration, ids);
            # Django's own 4xx warnings would repeat it. 5xx tracebacks still go out as errors.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
            "gunicorn.error": {"level": level, "propagate": True},
            # billiard (Celery's pool) logs through "multiprocessing" with propagation off, so
            # without a handler of its own a pool child's exit went out as a plain-text line.
            "multiprocessing": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        },
    }


def init_sentry(*, dsn: str, environment: str) -> bool:
    """Errors go to Sentry only when SENTRY_DSN is set (the optional `sentry` extra)."""
    if not dsn:
        return False
    # Optional dependency (the `sentry` extra): imported only when a DSN is configured.
    import sentry_sdk  # noqa: PLC0415
    from sentry_sdk.integrations.celery import CeleryIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.django import DjangoIntegration  # noqa: PLC0415

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        # Customer names, e-mails and amounts stay out of error reports.
        send_default_pii=False,
        traces_sample_rate=0.0,
    )
    return True

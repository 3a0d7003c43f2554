"""Settings come from environment variables; every default is a safe development value.

Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis), SECRET_KEY,
DEBUG=0 and ALLOWED_HOSTS. With nothing set the product runs on a SQLite file and a
filesystem Celery broker, so a new user needs nothing but Python.
"""

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
import dj_email_url
from celery.schedules import crontab

from billingsite.ops.config import init_sentry, logging_config, parse_cache_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BILLING_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
# The development key is public on purpose; production refuses to start without its own.
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
# The loopback names are always allowed: health checks (the compose file's, a load balancer's
# on the same host, `curl 127.0.0.1:8000/readyz`) and the proxy's /metrics location reach
# gunicorn by them, and a host Django does not know gets a 400. Host validation guards the
# links Django builds from the Host header; one built for a loopback name points at the
# reader's own machine, nowhere an attacker can listen.
ALLOWED_HOSTS += [host for host in ("127.0.0.1", "localhost", "[::1]") if host not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # django.contrib.admin with the finance site (dashboard index, audit trail).
    "billingsite.admin.FinanceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "djmoney",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    # List exports of the finance admin (CSV with BOM, XLSX): billingsite/exports.py.
    "import_export",
    "axes",
    "accounts",
    "plans",
    "invoices",
]

MIDDLEWARE = [
    # Outermost: times every response and binds the request id the log lines carry.
    "billingsite.ops.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware (its documented place): serves hashed static files with
    # far-future cache headers from the production server, no separate file server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "billingsite.middleware.RefuseNulCharactersMiddleware",
    # Before anything costly: a heavy request waits here for a slot (under gunicorn only), a
    # quote or usage push does not (billingsite/ops/admission.py).
    "billingsite.ops.middleware.AdmissionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # AxesMiddleware must stay last: it turns lockouts into responses.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "billingsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "billingsite.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'billing.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        # A kept connection that the database or a pooler closed is replaced, not a 500.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, whose health check of a kept connection sends no query while the
    # connection is idle and quiet (billingsite/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "billingsite.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The run command serves HTTP and runs a Celery worker on one SQLite file: WAL plus a busy
    # timeout lets them take turns instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend with the logged-in user's read compiled; Django's own stays after it only
    # for the sessions it logged in (billingsite/auth_backend.py).
    "billingsite.auth_backend.CompiledModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The billing clock: every period, due date and arrears day is an Asia/Shanghai calendar date.
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
# ISO dates everywhere (billingsite/formats/__init__.py says why).
FORMAT_MODULE_PATH = ["billingsite.formats"]
# Stock admin pages and `{{ money }}` print a Money through django-money's str(): the same
# figure as billingsite.money.format_cny ('¥6,000.00', '-¥1,250.50') in both languages, never
# the English locale's 'CN¥' (tests/ops/test_formatting.py holds them equal).
MONEY_FORMAT = {"format": "¥#,##0.00"}

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# Whitenoise warns about a missing root before the first `collectstatic`.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Uploaded files (fapiao PDFs/OFDs): private, never under a URL of the web server; only the
# views that check who asks serve them (invoices.documents.fapiao.fapiao_file_response).
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production (DEBUG=0) serves what `collectstatic` wrote: gzip-compressed files with the
    # content hash in their names, so they can be cached for a year. Development and tests keep
    # Django's plain storage (no collectstatic needed before `runserver` or pytest).
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "billingsite.ops.static.GzipManifestStaticFilesStorage"
    },
}

# --- Cache ---------------------------------------------------------------------------------
# API throttles, the dashboard's run-rate cache and the beat lock live here. Production points
# CACHE_URL at Redis so every web process and host shares them; the default stays server-less.
CACHES = {"default": parse_cache_url(os.environ.get("CACHE_URL", "locmem://"))}

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:invoice-list"
LOGOUT_REDIRECT_URL = "portal:login"

# --- Money ---------------------------------------------------------------------------------
CURRENCIES = ("CNY",)
CURRENCY_CHOICES = [("CNY", "CNY ¥")]
DEFAULT_CURRENCY = "CNY"

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token authentication, with the user's roles read in the same query.
        "billingsite.api.TokenWithRolesAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Refuses over-deep JSON and NUL characters with a 400 (billingsite/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["billingsite.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_RATES": {
        "accounting": os.environ.get("ACCOUNTING_THROTTLE_RATE", "600/minute"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
    # Every refusal of every endpoint in one shape, {code, message, field}.
    "EXCEPTION_HANDLER": "billingsite.api_errors.exception_handler",
}
# /api/schema/ and /api/docs/ for anyone (development) or for a staff login only (production).
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", DEBUG)
SPECTACULAR_SETTINGS = {
    "TITLE": "IM billing back-office API",
    "DESCRIPTION": "Quotes, usage ingest, provisioning and accounting export. Amounts are CNY "
    "strings with two decimals; dates are ISO 8601 in Asia/Shanghai.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc come from drf-spectacular-sidecar's static files: the docs page
    # makes no request to a CDN (often unreachable from mainland China, and never needed).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Customers' and applications' service status (other documents have their own statuses).
    "ENUM_NAME_OVERRIDES": {"ServiceStatusEnum": "accounts.models.Application.Status"},
}

# --- Celery --------------------------------------------------------------------------------
# Default broker: kombu's filesystem transport, a real broker across processes with no server.
# The host part means nothing to the filesystem transport; without one kombu warns "No
# hostname was supplied" on every connection.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
_broker_dir = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "in"),
        "data_folder_out": str(_broker_dir / "in"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast (remote control) messages; kombu would otherwise write ./control/.
        "control_folder": str(_broker_dir / "control"),
    }
# Redis gives a message that was delivered but never acknowledged to a worker again after
# this many seconds: a billing chunk whose whole worker was killed (kill -9, a lost machine) is
# billed again by a restarted worker about this long after it was taken (kombu's default is an
# hour). Every task must finish well within it (a chunk of 200 accounts takes seconds), and a
# task waits at most half of it inside a worker (longer delivery backoffs hop: accounts.events.tasks).
CELERY_BROKER_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_BROKER_VISIBILITY_TIMEOUT", "180"))
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        # Workers look for such messages every 10 s (kombu's default scans every 10th look).
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = False
# A task is acknowledged when it returns, and given back to the broker when the pool process
# running it dies; the visibility timeout covers a worker that dies whole.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker that loses the broker stops the acks_late tasks it runs: they are delivered again.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# One queue name per deployment (or per test worker) keeps separate setups on one broker apart.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
# django-celery-beat's database scheduler behind a lock in the shared cache: a second beat
# started by mistake waits and schedules nothing (see billingsite/ops/beat.py).
CELERY_BEAT_SCHEDULER = "billingsite.ops.beat:LockedDatabaseScheduler"
# The vendor bills "at 24:00 on the 1st", i.e. 00:00 on the 2nd, for the previous month.
CELERY_BEAT_SCHEDULE = {
    "month-end-billing": {
        "task": "invoices.tasks.start_monthly_billing",
        "schedule": crontab(minute=0, hour=0, day_of_month=2),
    },
    # Expired promotional credit lapses before the arrears check reads the balances.
    "daily-promo-credit-lapse": {
        "task": "invoices.tasks.lapse_promo_credit",
        "schedule": crontab(minute=5, hour=0),
    },
    "daily-arrears-check": {
        "task": "invoices.tasks.enforce_arrears",
        "schedule": crontab(minute=10, hour=0),
    },
    # Opt-in monthly statements of the previous month, once its run has finished (each
    # customer's once: the hourly repeats record nothing new).
    "monthly-statements": {
        "task": "invoices.tasks.send_monthly_statements",
        "schedule": crontab(minute=30, hour="1-23", day_of_month=2),
    },
    # Safety net for customer events whose delivery never reached the broker.
    "pending-customer-events": {
        "task": "accounts.tasks.deliver_pending_events",
        "schedule": crontab(minute="*/30"),
    },
    # Online top-ups whose notification is late or lost are asked for at the provider and
    # settled; unpaid ones past their expiry are closed there (accounts.payments).
    "pending-top-ups": {
        "task": "accounts.tasks.settle_pending_top_ups",
        "schedule": crontab(minute="*/2"),
    },
}
# A manual adjustment above this many CNY waits for a Finance manager's approval; 0: every
# positive one (it gives the customer money, like a credit note). Negative ones never wait.
BILLING_ADJUSTMENT_APPROVAL_ABOVE = Decimal(
    os.environ.get("BILLING_ADJUSTMENT_APPROVAL_ABOVE", "0")
)
BILLING_RUN_CHUNK_SIZE = int(os.environ.get("BILLING_RUN_CHUNK_SIZE", "200"))
# A running run with no chunk finished for this many seconds shows as stalled (dashboard, runs
# list); a finance manager can resume it or close it as interrupted. Ten minutes: a chunk takes
# seconds, and a lost chunk comes back after the broker's visibility timeout (3 minutes).
BILLING_RUN_STALL_AFTER = int(os.environ.get("BILLING_RUN_STALL_AFTER", "600"))
# PostgreSQL: the run's two per-account statements are prepared once per session. Turn off
# behind a pooler in transaction mode that does not keep prepared statements (PgBouncer before
# 1.21); they are then sent with their parameters inlined like Django's other queries.
BILLING_RUN_PREPARED_STATEMENTS = env_bool("BILLING_RUN_PREPARED_STATEMENTS", True)


# --- Online top-ups (accounts/payments/; docs/deploying.md) ---------------------------------
def env_secret(name: str) -> str:
    """A key given inline (`NAME`, PEM text) or as a file (`NAME_FILE`, e.g. a mounted secret)."""
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        return Path(path).read_text()
    return os.environ.get(name, "")


# The amount a customer may top up at once (CNY).
BILLING_TOP_UP_MIN = Decimal(os.environ.get("BILLING_TOP_UP_MIN", "10.00"))
BILLING_TOP_UP_MAX = Decimal(os.environ.get("BILLING_TOP_UP_MAX", "100000.00"))
# An unpaid order is closed at the provider after this many minutes.
BILLING_TOP_UP_EXPIRE_MINUTES = int(os.environ.get("BILLING_TOP_UP_EXPIRE_MINUTES", "30"))
# An order still unpaid this many minutes after its creation is asked for at the provider.
BILLING_TOP_UP_QUERY_AFTER_MINUTES = int(os.environ.get("BILLING_TOP_UP_QUERY_AFTER_MINUTES", "3"))
# Public https base URL of this site: the providers post their notifications to
# <base>/payments/<provider>/notify/ and Alipay sends the customer back to the portal under it.
BILLING_PUBLIC_BASE_URL = os.environ.get("BILLING_PUBLIC_BASE_URL", "").rstrip("/")
# Alipay open platform, computer-website payment, RSA2 ("public key" mode). A method without
# its keys is not offered.
ALIPAY_APP_ID = os.environ.get("ALIPAY_APP_ID", "")
ALIPAY_APP_PRIVATE_KEY = env_secret("ALIPAY_APP_PRIVATE_KEY")
ALIPAY_PUBLIC_KEY = env_secret("ALIPAY_PUBLIC_KEY")
ALIPAY_GATEWAY = os.environ.get("ALIPAY_GATEWAY", "https://openapi.alipay.com/gateway.do")
# WeChat Pay API v3, Native payment, verified with the WeChat Pay public key (not the
# platform-certificate download).
WECHATPAY_MCH_ID = os.environ.get("WECHATPAY_MCH_ID", "")
WECHATPAY_APP_ID = os.environ.get("WECHATPAY_APP_ID", "")
WECHATPAY_PRIVATE_KEY = env_secret("WECHATPAY_PRIVATE_KEY")
WECHATPAY_CERT_SERIAL_NO = os.environ.get("WECHATPAY_CERT_SERIAL_NO", "")
WECHATPAY_APIV3_KEY = env_secret("WECHATPAY_APIV3_KEY").strip()
WECHATPAY_PUBLIC_KEY = env_secret("WECHATPAY_PUBLIC_KEY")
WECHATPAY_PUBLIC_KEY_ID = os.environ.get("WECHATPAY_PUBLIC_KEY_ID", "")

# --- Notifications -------------------------------------------------------------------------
# EMAIL_URL (e.g. `smtp://user:password@mail.example.com:587/?tls=True`, `smtps://...`,
# `console:`) sets the backend and every SMTP setting at once (dj-email-url); without it the
# single EMAIL_* variables apply.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Seconds before an SMTP exchange gives up (the delivery is then retried with backoff).
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
if os.environ.get("EMAIL_URL"):
    globals().update(
        {
            key: value
            for key, value in dj_email_url.parse(os.environ["EMAIL_URL"]).items()
            if value is not None and key != "EMAIL_FILE_PATH"
        }
    )
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@localhost")
# The issuer printed on pages, PDFs and e-mails; deployment data.
BILLING_ISSUER_NAME = os.environ.get("BILLING_ISSUER_NAME", "IM Cloud")
BILLING_ISSUER_ADDRESS = os.environ.get("BILLING_ISSUER_ADDRESS", "")
BILLING_ISSUER_EMAIL = os.environ.get("BILLING_ISSUER_EMAIL", "") or DEFAULT_FROM_EMAIL
BILLING_ISSUER_PHONE = os.environ.get("BILLING_ISSUER_PHONE", "")
# The issuer's bank account customers transfer to (balance page, invoices, PDFs, e-mails);
# empty: no bank details are printed. The account name defaults to the issuer's name.
BILLING_ISSUER_BANK_NAME = os.environ.get("BILLING_ISSUER_BANK_NAME", "")
BILLING_ISSUER_BANK_ACCOUNT = os.environ.get("BILLING_ISSUER_BANK_ACCOUNT", "").strip()
BILLING_ISSUER_BANK_ACCOUNT_NAME = (
    os.environ.get("BILLING_ISSUER_BANK_ACCOUNT_NAME", "") or BILLING_ISSUER_NAME
)
# More how-to-pay text, printed in every customer e-mail under "How to pay" after the bank
# account and the customer's transfer reference.
BILLING_PAYMENT_INSTRUCTIONS = os.environ.get("BILLING_PAYMENT_INSTRUCTIONS", "")
# Bank statements (accounts/payments/bank_statements.py; README "Bank transfers"). The CSV
# export of the issuer's bank: `field=Header` pairs naming the column of each field (date,
# transaction_id, amount (signed) or credit + debit, payer_name, payer_account, remark,
# currency); the date format; the statement's account when the CSV does not name it.
BILLING_BANK_CSV_COLUMNS = os.environ.get(
    "BILLING_BANK_CSV_COLUMNS",
    "date=交易日期,transaction_id=交易流水号,credit=贷方金额,debit=借方金额,"
    "payer_name=对方户名,payer_account=对方账号,remark=摘要",
)
BILLING_BANK_CSV_DATE_FORMAT = os.environ.get("BILLING_BANK_CSV_DATE_FORMAT", "%Y-%m-%d")
BILLING_BANK_ACCOUNT = os.environ.get("BILLING_BANK_ACCOUNT", "") or BILLING_ISSUER_BANK_ACCOUNT
# The issuer's own accounts (comma-separated): a credit from one of them is a transfer between
# our accounts, not a customer's payment. The issuer's bank account is always one.
BILLING_BANK_OWN_ACCOUNTS = [
    value.strip().replace(" ", "")
    for value in [
        *os.environ.get("BILLING_BANK_OWN_ACCOUNTS", "").split(","),
        BILLING_ISSUER_BANK_ACCOUNT,
    ]
    if value.strip()
]
# The customer invoice page as customers reach it: links in e-mails.
BILLING_PORTAL_URL = os.environ.get("BILLING_PORTAL_URL", "http://127.0.0.1:8000").rstrip("/")
# Attach the invoice / credit note / statement PDF to its e-mail (the link is always there).
BILLING_EMAIL_ATTACH_PDF = env_bool("BILLING_EMAIL_ATTACH_PDF", True)
# The signing secret of the mail provider's bounce and complaint webhook (POST /mail/events/,
# Standard Webhooks / Svix, e.g. Resend's `whsec_...`); unset: the endpoint answers 404.
MAIL_WEBHOOK_SECRET = os.environ.get("MAIL_WEBHOOK_SECRET", "")
# No URL configured means no webhook is sent.
BILLING_WEBHOOK_URL = os.environ.get("BILLING_WEBHOOK_URL", "")
BILLING_WEBHOOK_SECRET = os.environ.get("BILLING_WEBHOOK_SECRET", "")

# --- Security ------------------------------------------------------------------------------
AXES_VERBOSE = False
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 1  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The lockout page explains the wait and offers a password reset (status 429).
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Probes and the metrics scrape come over plain HTTP from inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
# The database sessions with their read compiled once per process (billingsite.sessions).
SESSION_ENGINE = "billingsite.sessions"

# Production logs one JSON object per line (request id, user, role, customer, run and chunk
# ids); development keeps plain text. LOG_FORMAT overrides either way.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING = logging_config(log_format=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))

# --- Operations ----------------------------------------------------------------------------
# /metrics answers a request with "Authorization: Bearer <METRICS_TOKEN>", or any request when
# no token is set and the client address is in METRICS_ALLOWED_IPS (default: this host only).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "127.0.0.1,::1")
# /readyz fails when beat has not been seen for this long.
BEAT_STALE_AFTER_SECONDS = int(os.environ.get("BEAT_STALE_AFTER_SECONDS", "300"))
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
init_sentry(dsn=SENTRY_DSN, environment=os.environ.get("SENTRY_ENVIRONMENT", "production"))

# django-import-export (export only): whoever may view a finance list may export it.
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

"""gunicorn configuration of the `web` process (Procfile): `gunicorn -c python:billingsite.ops.gunicorn
billingsite.wsgi`.

gunicorn rather than granian: the application is synchronous Django, so a pre-fork server is
all it needs; gunicorn is pure Python (no
binary wheel to trust on every platform), the most used WSGI server with Django, and its
child_exit hook is what prometheus-client's multi-process mode needs.

Every setting can be changed from the environment (the same names gunicorn documents).
"""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from billingsite.ops import admission

# Must be set before prometheus_client is imported anywhere, in this master process or in the
# workers forked from it: their counters then go to files /metrics adds up.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(Path(tempfile.gettempdir()) / f"billing-prometheus-{os.getpid()}"),
)

# Web requests reuse their thread's database connection for a minute instead of connecting
# for each request (a third of a quote's time on PostgreSQL). Behind a transaction pooler set
# DB_CONN_MAX_AGE=0 (docs/deploying.md).
os.environ.setdefault("DB_CONN_MAX_AGE", "60")

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Threaded workers (gthread: one process per core, 16 threads) with admission control by
# default (billingsite/ops/admission.py): the heavy requests (pages, admin, estimate, exports)
# share two slots per core across the processes (a page also waits for the database, whose
# CPU is on the same cores: one slot per core left them idle), the light machine-facing calls
# (quote, usage push, health checks) one slot per core of their own, and a worker's threads
# give up the GIL every millisecond (Python's default is 5 ms). Measured one after the other
# on the shared 2-core machine (bench/README.md, "Admission control"): against 5 sync workers
# (one accept queue: the 2 ms quote waits as long as a page) the quote's and the usage push's
# p95 fell 3-4 fold and the pages' a little; against plain gthread 2 x 16 the quote's and the
# usage push's fell by a third to a half for pages 10-20 % slower. WEB_WORKER_CLASS=sync gives back 2 x cores + 1 sync workers
# without slots. Processes x threads = concurrent requests = database connections per host
# (docs/deploying.md sizes `max_connections`); a sync worker is also killed when a request
# runs past WEB_TIMEOUT, a gthread worker only when its whole process stops answering.
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
_cpus = os.cpu_count() or 1
_threaded = worker_class == "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", str(_cpus if _threaded else 2 * _cpus + 1)))
threads = int(os.environ.get("WEB_THREADS", "16" if _threaded else "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
# Heavy requests running at once across all the workers; 0 turns admission control off. Only
# threaded workers hold the waiting requests apart from the light ones: a sync worker waiting
# for a slot is one worker fewer for the quotes.
heavy_slots = int(os.environ.get("WEB_HEAVY_SLOTS", str(2 * _cpus) if _threaded else "0"))
# Light requests running at once (0: no cap). They wait only for each other; uncapped, a flood
# of quotes took the cores from the pages (a page shares its process's GIL with every quote in
# flight: pages p95 6-14 s and 503s in the measurement).
light_slots = int(os.environ.get("WEB_LIGHT_SLOTS", str(_cpus) if heavy_slots else "0"))
# Seconds a request waits for a slot before its 503 (below WEB_TIMEOUT and the proxy's).
heavy_wait = float(os.environ.get("WEB_HEAVY_WAIT", "10"))
# How long a quote's thread may wait for a page's thread of the same process to give up the GIL.
switch_interval_ms = float(os.environ.get("WEB_SWITCH_INTERVAL_MS", "1" if heavy_slots else "5"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# The TLS proxy in front (docs/deploying.md) is trusted for X-Forwarded-*.
# gunicorn's control socket (gunicornc) lives at one path per user: several masters on a host
# (two deployments, a test next to a service) would fight over it. Signals do the same job.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# One line per request comes from billingsite.ops.middleware (with the request id and user);
# gunicorn's own lines go through Django's LOGGING (JSON in production).
accesslog = None


class AccessLogWhenEnabled(Logger):
    """gunicorn's logger, which skips building an access line nobody will see: with a
    `logconfig_dict` gunicorn gathers a line's ~30 fields for every request and only then
    lets the `gunicorn.access` logger (WARNING, below) drop it."""

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = AccessLogWhenEnabled
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "billingsite.ops.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if os.environ.get("LOG_FORMAT") == "text" else "json",
        }
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}


def on_starting(server):
    # Counters of a previous run of this master would be added to the new ones.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    # Here, in the master before the first fork, so that every worker shares the same slots.
    if admission.slots_install(heavy_slots, light=light_slots, wait_seconds=heavy_wait):
        server.log.info("admission control: %d slots for heavy requests", heavy_slots)


def post_fork(server, worker):
    sys.setswitchinterval(switch_interval_ms / 1000)


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
    # A worker killed mid-request (WEB_TIMEOUT, out of memory) never released its slots.
    for slots in (admission.installed_slots(), admission.installed_light_slots()):
        if slots is not None and (reclaimed := slots.reclaim(worker.pid)):
            server.log.warning("worker %s died holding %d slots: given back", worker.pid, reclaimed)

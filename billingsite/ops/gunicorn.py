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
from gunicorn.util import parse_address
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
# 2 x cores + 1 sync workers by default: every request waits in the kernel's one accept queue
# and a request running past WEB_TIMEOUT gets its worker killed. Measured side by side on an
# idle 2-core machine (bench/README.md, "Idle figures at the end of the session of 2026-12-01"),
# 32 clients: sync gave the pages p95 ~200 ms and the quote 187 ms at 194 req/s; gthread 2 x 16
# with admission control (billingsite/ops/admission.py) the quote 161-206 ms but the pages
# 450-550 ms at 156-177 req/s (a page shares its process's GIL with every request in flight).
# At 8 clients both met every target of issue 14. WEB_WORKER_CLASS=gthread turns on threads
# with admission control (heavy and light slots below) for a host that mostly serves the
# machine-facing API. Processes x threads = concurrent requests = database connections per
# host (docs/deploying.md sizes `max_connections`); a gthread worker is only killed when its
# whole process stops answering.
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
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
# The short machine-facing calls' own pool (sync workers only; gthread has the slots above),
# on when LIGHT_BIND names its address (deploy/ does; a plain `honcho start` does not, so that
# an upgrade never binds a port nobody asked for): WEB_LIGHT_WORKERS more sync processes accept
# only there and serve only `admission.LIGHT_ROUTES` (a quote, the probes, the scrape, the
# providers' notifications); the proxy in front routes those paths there (docs/deploying.md).
# Why: one accept queue is FIFO, so a 1 ms quote waited behind every page queued before it
# (32 clients: quote p95 ~90-130 ms). In its own queue it waits only for other light calls. The
# main port still serves everything, light calls included, so a proxy that does not route them
# loses the priority, nothing else. A queue alone is not enough: the light worker would still
# get one eighth of the cores among the main pool and PostgreSQL (quote p95 ~145 ms measured).
# WEB_HEAVY_NICE (3) lowers the main pool's CPU priority so that a quote also comes first for
# the cores; at 5 to 10 the pages lost more than the quote gained (bench/README.md, "A light
# pool for the quote").
light_bind = os.environ.get("LIGHT_BIND") or None


def _listener_key(address) -> object:
    """What tells the light listener from the main one: the port of a TCP address (a socket
    inherited on USR2 or from systemd reports its resolved host, not the configured name), or
    the path of a Unix socket."""
    return address[1] if isinstance(address, tuple) else address


# One listener on the main one's port (or path) could not be told apart from it: no pool.
_light_key = _listener_key(parse_address(light_bind)) if light_bind else None
light_workers = 0
if _light_key is not None and not _threaded and _light_key != _listener_key(parse_address(bind)):
    light_workers = int(os.environ.get("WEB_LIGHT_WORKERS", "1"))
heavy_nice = int(os.environ.get("WEB_HEAVY_NICE", "3")) if light_workers else 0
heavy_workers = workers
if light_workers:
    bind = [bind, light_bind]
    workers = heavy_workers + light_workers
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage. Not often: a new worker
# costs ~1-1.6 s of CPU (imports, the first request's URLconf), which at 5,000 requests was
# 0.2-0.3 ms of every request, a fifth of a quote (bench/README.md, "Less CPU per light
# request"); at 20,000 it is ~0.06 ms.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "20000"))
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


def on_reload(server):
    # HUP (systemd's reload) forks a whole new set of workers before it stops the old ones: the
    # new set's pools are counted among the new workers only (gunicorn numbers workers by age).
    server.billing_pools_since_age = server.worker_age


def pre_fork(server, worker):
    # In the master, before the fork: the new worker fills whichever pool is short. The main
    # pool is filled first, so at start the light workers are the youngest and a TTOU (which
    # stops the oldest first) takes main-pool workers.
    since = getattr(server, "billing_pools_since_age", 0)
    alive = [
        getattr(other, "pool", "main") for other in server.WORKERS.values() if other.age > since
    ]
    short_of_main = alive.count("main") < heavy_workers
    worker.pool = "light" if light_workers and not short_of_main else "main"


def post_fork(server, worker):
    sys.setswitchinterval(switch_interval_ms / 1000)
    if not light_workers:
        return
    in_light_pool = getattr(worker, "pool", "main") == "light"
    own = [
        listener
        for listener in worker.sockets
        if (_listener_key(listener.getsockname()) == _light_key) == in_light_pool
    ]
    if not own:
        # Never a worker without a socket (it would exit and be forked again, forever): one
        # that cannot find its pool's listener serves every route on every listener.
        server.log.error("worker %s: no listener for its %s pool", worker.pid, worker.pool)
        return
    worker.sockets = own
    if in_light_pool:
        admission.serve_light_routes_only()
        # Not recycled: with one light worker, its replacement's second of start-up would be
        # a second in which no quote is answered. It runs only a few short routes.
        worker.max_requests = sys.maxsize
    elif heavy_nice:
        os.nice(heavy_nice)


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
    # A worker killed mid-request (WEB_TIMEOUT, out of memory) never released its slots.
    for slots in (admission.installed_slots(), admission.installed_light_slots()):
        if slots is not None and (reclaimed := slots.reclaim(worker.pid)):
            server.log.warning("worker %s died holding %d slots: given back", worker.pid, reclaimed)

"""Celery's logging is Django's (JSON lines in production), and each task's lines carry its
name and id, and for a billing run chunk the run id and the chunk (the chunk task's id)."""

import logging
import logging.config

from celery.signals import celeryd_init, setup_logging, task_postrun, task_prerun
from django.conf import settings

from billingsite.ops.context import bind_log_context, clear_log_context

CHUNK_TASK = "invoices.tasks.billing_run_chunk"


def _configure_logging() -> None:
    logging.config.dictConfig(settings.LOGGING)
    # Python warnings (e.g. Celery's "running as root") become log lines, not raw stderr.
    logging.captureWarnings(True)


@celeryd_init.connect
def _worker_logging(**_):
    # Sent before the worker's first warning; setup_logging comes later.
    _configure_logging()
    # Celery prints its shutdown notices ("worker: Warm shutdown") straight to the terminal;
    # in production they become log lines like everything else. Only the prefork pool is
    # used here, so the eventlet caveat that made Celery bypass logging does not apply.
    import celery.apps.worker  # noqa: PLC0415 - a worker-only module, not loaded by web processes

    notices = logging.getLogger("celery.apps.worker")
    celery.apps.worker.safe_say = lambda message, f=None: notices.warning(message.strip())


@setup_logging.connect
def _celery_logging(**_):
    # Connected, so Celery leaves the root logger alone (worker and beat).
    _configure_logging()


@task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **_):
    clear_log_context()
    bind_log_context(task=getattr(task, "name", None), task_id=task_id)
    if getattr(task, "name", None) == CHUNK_TASK:
        args, kwargs = list(args or ()), dict(kwargs or {})
        run_id = kwargs.get("run_id", args[0] if args else None)
        customer_ids = kwargs.get("customer_ids", args[1] if len(args) > 1 else None) or []
        bind_log_context(run_id=run_id, chunk_id=task_id, chunk_accounts=len(customer_ids))


@task_postrun.connect
def _clear_task_context(**_):
    clear_log_context()

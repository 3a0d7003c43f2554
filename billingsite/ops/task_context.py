"""Log context of a Celery task: its name and id, and for a billing run chunk the run id and
the chunk (the task id, which the run's chunk messages are told apart by)."""

from celery.signals import task_postrun, task_prerun

from billingsite.ops.context import bind_log_context, clear_log_context

CHUNK_TASK = "invoices.tasks.billing_run_chunk"


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

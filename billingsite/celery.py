import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")

app = Celery("billingsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Worker log lines carry the task (and a run chunk's run id); see billingsite/ops/tasks_context.
import billingsite.ops.task_context  # noqa: E402,F401

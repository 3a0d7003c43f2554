import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")

app = Celery("billingsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The tasks live beside what they run (task names are explicit and unchanged).
app.autodiscover_tasks(["accounts.events", "accounts.payments", "invoices.run"])

# JSON logs with each task's context in worker and beat; see billingsite/ops/celery_signals.
import billingsite.ops.celery_signals  # noqa: E402,F401

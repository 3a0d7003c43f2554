"""Running the product in production: health probes, metrics, JSON logs, error pages, the
beat lock and the gunicorn configuration. Kernel code: it imports no billing app at module
level; what reads billing tables goes through `django.apps.apps.get_model` at call time."""

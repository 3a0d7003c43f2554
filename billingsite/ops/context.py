"""What the current log line is about: request id, user, role, customer, run and chunk.

Context variables follow a request through the view (gunicorn's threads each have their own)
and a Celery task through its body; the JSON formatter adds whatever is set to every line.
"""

import contextlib
import contextvars
from collections.abc import Iterator

_log_context: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "billing_log_context", default=None
)


def log_context() -> dict[str, object]:
    return _log_context.get() or {}


def bind_log_context(**fields: object) -> None:
    """Adds fields to the current context (a request or a task) until it is cleared."""
    _log_context.set({**log_context(), **{k: v for k, v in fields.items() if v is not None}})


def clear_log_context() -> None:
    _log_context.set(None)


@contextlib.contextmanager
def logged_as(**fields: object) -> Iterator[None]:
    """Binds fields for a block (a run's chunk, a task) and restores the outer context after."""
    token = _log_context.set(
        {**log_context(), **{k: v for k, v in fields.items() if v is not None}}
    )
    try:
        yield
    finally:
        _log_context.reset(token)

"""Who wrote a row when no person did: the process ("system: billing run 2026-10").

A task or command that writes runs inside `system_actor("billing run 2026-10")`. Every
django-simple-history record saved meanwhile without a user gets the change reason
"system: billing run 2026-10" (`history_change_reason`, a column every history table has), so
the audit trail names the process instead of a bare "system". A context variable, so a Celery
worker's concurrent tasks and a request's threads never see each other's actor.

Rows outside simple-history (the ledger, an invoice's issue, a credit note, a run) carry their
own author column (`created_by`, `issued_by`); where it is empty the audit trail names the
process from the row itself (an invoice issued by its billing run, an online top-up's deposit).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record

SYSTEM_PREFIX = "system: "
# What lists, exports and the audit trail name as the author of a row no person wrote.
SYSTEM_USER = "system"
# history_change_reason is a CharField(100).
_REASON_LENGTH = 100

_actor: ContextVar[str | None] = ContextVar("billing_system_actor", default=None)


def recorded_by(user) -> str:
    """The author of a row in finance's lists and exports: the user's username, or
    SYSTEM_USER when a service wrote it without one."""
    return user.get_username() if user is not None else SYSTEM_USER


@contextmanager
def system_actor(name: str) -> Iterator[None]:
    """History records written inside are attributed to `name` when no user wrote them."""
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)


def current_system_actor() -> str | None:
    return _actor.get()


def system_reason(name: str) -> str:
    return (SYSTEM_PREFIX + name)[:_REASON_LENGTH]


@receiver(pre_create_historical_record, dispatch_uid="billingsite.audit.attribute_system")
def _attribute_system_write(sender, history_instance, **kwargs) -> None:
    actor = _actor.get()
    if (
        actor is not None
        and history_instance.history_user_id is None
        and not history_instance.history_change_reason
    ):
        history_instance.history_change_reason = system_reason(actor)

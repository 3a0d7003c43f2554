"""Logins (portal and admin): Django's `ModelBackend`, the logged-in user's read compiled once
per process (`billingsite.queries.compiled_read`).

Every request of a logged-in user reads that user (`get_user`, by the id in its session):
through the ORM the read was built and compiled again each time, about 1,000 Python calls, a
tenth of a portal page's CPU. Same table, same row, same rule (an inactive user is no user).
The same statement reads the login's customer link and customer, which every portal page
needs next: one round trip instead of two.

A session names the backend that logged it in, and Django loads only a backend that
`AUTHENTICATION_BACKENDS` lists. Django's `ModelBackend` stays listed after this one so that
sessions it logged in before this backend existed keep their user (they read it through the
ORM until they expire); new logins name this backend. So that a wrong password is not checked
twice (once here, once by Django's backend after it), a login this backend refuses stops here:
`PermissionDenied` ends Django's `authenticate`, which then reports the failure as before
(`user_login_failed`, which django-axes counts).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from billingsite.queries import compiled_read


@compiled_read
def _user(*, user_id: int):
    # `get(pk=...)`'s row: the primary key matches one row at most. With it, in the same
    # statement, the portal login's customer (a LEFT JOIN: none for staff), which every portal
    # page reads next (`invoices.portal.views.portal_customer_of` decides from these rows).
    return (
        get_user_model()
        ._default_manager.filter(pk=user_id)
        .select_related("customer_link__customer")[:1]
    )


class CompiledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            raise PermissionDenied
        return user

    def get_user(self, user_id):
        user = _user.first(user_id=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

"""Shared pieces of the REST API: token authentication and role permissions by Django group."""

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission

from billingsite.postgresql.prepared import fetch_fixed


@functools.cache
def _token_sql() -> tuple[str, list[str]]:
    """The token, its user and the user's group names in one statement (PostgreSQL), and the
    user's attnames in the order of its columns there."""
    user_model = get_user_model()
    fields = user_model._meta.concrete_fields
    columns = ", ".join(f'u."{field.column}"' for field in fields)
    user_table = user_model._meta.db_table
    groups = user_model.groups.through._meta.db_table
    sql = (
        f'SELECT t."created", {columns}, ARRAY(SELECT g."name" FROM "auth_group" g '
        f'JOIN "{groups}" ug ON ug."group_id" = g."id" WHERE ug."user_id" = u."id") '
        f'FROM "{Token._meta.db_table}" t JOIN "{user_table}" u ON u."id" = t."user_id" '
        'WHERE t."key" = %s'
    )
    return sql, [field.attname for field in fields]


class TokenWithRolesAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <key>`, which on PostgreSQL reads the token, its user and
    the user's group names (their roles) in one fixed statement. Every API request needs the
    roles (its role check or its log line): DRF's lookup plus a roles query cost about a
    third of a quote's Python work in query building (bench/README.md). Same answers as
    TokenAuthentication: 401 for an unknown token or an inactive user; other databases use
    DRF's lookup unchanged."""

    def authenticate_credentials(self, key):
        if connection.vendor != "postgresql":
            return super().authenticate_credentials(key)
        sql, names = _token_sql()
        row = fetch_fixed(connection, sql, [key], one=True)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        created, *values, group_names = row
        user = get_user_model().from_db(connection.alias, names, values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user.group_names_read = frozenset(group_names)
        token = Token.from_db(
            connection.alias, ["key", "user_id", "created"], [key, user.pk, created]
        )
        token.user = user
        return (user, token)


class HasRole(BasePermission):
    """Allows authenticated users in one of `roles` (Django group names). Superusers are not
    let through implicitly: an API token belongs to exactly one role's user."""

    roles: tuple[str, ...] = ()
    message = "Your token's role may not call this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return bool(request_group_names(request) & set(self.roles))


def request_group_names(request) -> frozenset[str]:
    """The request's user's group names, read once per request (or with the token, see
    TokenWithRolesAuthentication): the permission check and the request's log line
    (billingsite.ops.middleware) both need them. `request`: DRF's or Django's."""
    http_request = getattr(request, "_request", request)  # DRF wraps Django's request
    names = getattr(http_request, "user_group_names", None)
    if names is None:
        names = getattr(request.user, "group_names_read", None)
        if names is None:
            names = frozenset(request.user.groups.values_list("name", flat=True))
        http_request.user_group_names = names
    return names


def role_permission(*roles: str) -> type[HasRole]:
    """`permission_classes = [role_permission(roles.CONSOLE)]`."""
    return type(
        f"HasRole_{'_'.join(r.replace(' ', '') for r in roles)}", (HasRole,), {"roles": roles}
    )


class IsStaff(BasePermission):
    """Finance staff (Django `is_staff`): quotes and previews."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)

"""Shared pieces of the REST API: role permissions by Django group."""

from rest_framework.permissions import BasePermission


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
    """The request's user's group names, read once per request: the permission check and
    the request's log line (billingsite.ops.middleware) both need them."""
    http_request = getattr(request, "_request", request)  # DRF wraps Django's request
    names = getattr(http_request, "user_group_names", None)
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

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
        return user.groups.filter(name__in=self.roles).exists()


def role_permission(*roles: str) -> type[HasRole]:
    """`permission_classes = [role_permission(roles.CONSOLE)]`."""
    return type(
        f"HasRole_{'_'.join(r.replace(' ', '') for r in roles)}", (HasRole,), {"roles": roles}
    )


class IsStaff(BasePermission):
    """Finance staff (Django `is_staff`): quotes and previews."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)

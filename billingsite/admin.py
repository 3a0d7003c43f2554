"""The finance back-office: the admin site, and the small helpers every admin module shares.

The admin holds no business logic. Its custom pages are thin: a form checks the shape of the
input, one service call does the work, and the service's refusal becomes a form error or a
message. Nothing here computes a price or touches the ledger directly.

`FinanceAdminConfig` replaces `django.contrib.admin` in INSTALLED_APPS so the default
`admin.site` is a `FinanceAdminSite` (the index is the month at a glance; /admin/audit/ is the
audit trail).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy


class FinanceAdminConfig(AdminConfig):
    default_site = "billingsite.admin.FinanceAdminSite"

    def ready(self):
        super().ready()  # autodiscovers, so django-celery-beat's own admin is registered now
        _register_periodic_task_admin()


def _register_periodic_task_admin() -> None:
    """Replace django-celery-beat's PeriodicTaskAdmin: its enable/disable/toggle/run actions
    declare no permission, so anyone who may see the schedule (an auditor) could switch off
    month-end billing. Here each needs `change_periodictask` (Finance manager, superusers)."""
    # Imported once the admin is ready: django-celery-beat's admin module registers its own
    # ModelAdmin on import, which autodiscovery must have done first.
    from django_celery_beat.admin import PeriodicTaskAdmin  # noqa: PLC0415
    from django_celery_beat.models import PeriodicTask  # noqa: PLC0415

    class FinancePeriodicTaskAdmin(PeriodicTaskAdmin):
        @admin.action(description="Enable selected tasks", permissions=["change"])
        def enable_tasks(self, request, queryset):
            return super().enable_tasks(request, queryset)

        @admin.action(description="Disable selected tasks", permissions=["change"])
        def disable_tasks(self, request, queryset):
            return super().disable_tasks(request, queryset)

        @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
        def toggle_tasks(self, request, queryset):
            return super().toggle_tasks(request, queryset)

        @admin.action(description="Run selected tasks", permissions=["change"])
        def run_tasks(self, request, queryset):
            return super().run_tasks(request, queryset)

    site = admin.site
    if site.is_registered(PeriodicTask):
        site.unregister(PeriodicTask)
    site.register(PeriodicTask, FinancePeriodicTaskAdmin)


class FinanceAdminSite(admin.AdminSite):
    site_header = gettext_lazy("IM billing back-office")
    site_title = gettext_lazy("IM billing")
    index_title = gettext_lazy("The month at a glance")
    index_template = "admin/finance_index.html"
    # Finance pages are wide tables; the index and the breadcrumbs are the navigation.
    enable_nav_sidebar = False

    @property
    def login_form(self):
        # The login form imports the auth models: not while the apps load this module.
        from billingsite.login_forms import BoundedAdminAuthenticationForm  # noqa: PLC0415

        return BoundedAdminAuthenticationForm

    def __init__(self, name: str = "admin"):
        super().__init__(name)
        # The index's figures and the site's own pages (the audit trail) are the apps': the
        # invoices admin hands them in (`invoices.admin.site_pages`) when autodiscovery imports
        # it, so the kernel imports no app.
        self.index_figures: Callable[[HttpRequest], dict[str, object]] | None = None
        self.pages: list[tuple[str, Callable[[HttpRequest], HttpResponse], str]] = []

    def page_add(
        self, route: str, view: Callable[[HttpRequest], HttpResponse], *, name: str
    ) -> None:
        """Serve `view` at /admin/<route> (URL name `admin:<name>`) behind the admin's login."""
        self.pages.append((route, view, name))

    def index(self, request, extra_context=None):
        context = {
            **(self.index_figures(request) if self.index_figures is not None else {}),
            "perms_for_links": _link_permissions(request.user),
        }
        context.update(extra_context or {})
        return super().index(request, extra_context=context)

    def get_urls(self):
        return [
            path(route, self.admin_view(view), name=name) for route, view, name in self.pages
        ] + super().get_urls()


def _link_permissions(user) -> dict[str, bool]:
    return {
        "start_run": user.has_perm("invoices.add_billingrun"),
        "import_usage": user.has_perm("accounts.add_dailyusage"),
        "view_invoices": user.has_perm("invoices.view_invoice"),
        "audit": user.has_perm("accounts.view_ledgerentry"),
    }


# --- helpers shared by the app admin modules ----------------------------------------------


def new_form_token() -> str:
    """A fresh token for a form page. Sent back with the post, it becomes the service's
    idempotency key, so a double submit (or a retried post) is recorded once."""
    return uuid.uuid4().hex


def require_perm(request, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def require_post(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


def service_errors() -> tuple[type[BaseException], ...]:
    """The refusal types of the services the admin calls, imported late so the admin loads
    even while a service module is still being written."""
    errors: list[type[BaseException]] = [ValidationError]
    for module, names in (
        ("accounts.services", ("LedgerError", "AccountError")),
        ("accounts.usage", ("UsageValidationError", "UsageBilledMonthError")),
        ("plans.services", ("SubscriptionError",)),
        ("invoices.documents.services", ("InvoiceError",)),
        ("plans.rating.engine", ("RatingError",)),
        ("billingsite.money", ("CurrencyError",)),
    ):
        try:
            imported = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        for name in names:
            error = getattr(imported, name, None)
            if isinstance(error, type) and issubclass(error, BaseException):
                errors.append(error)
    return tuple(errors)


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    rows = _error_rows(exc)
    if rows:
        return "; ".join(_row_error_text(row) for row in rows)
    return str(getattr(exc, "message", "") or exc) or exc.__class__.__name__


def _error_rows(exc: BaseException) -> list:
    """Per-row problems of a bulk refusal (usage import): `errors` or `conflicts`."""
    for name in ("errors", "conflicts"):
        rows = getattr(exc, name, None)
        if isinstance(rows, list) and rows:
            return rows
    return []


def _row_error_text(row) -> str:
    if not isinstance(row, dict):
        return str(row)
    if row.get("line"):
        where = f"line {row['line']}"
    elif isinstance(row.get("index"), int):
        where = f"row {row['index'] + 1}"
    else:
        where = "file"
    field = row.get("field")
    if "message" in row:
        message = row["message"]
    else:  # a billed-month conflict
        message = (
            f"{row.get('app_key')} on {row.get('date')} is already invoiced "
            f"({row.get('invoice')}); correct billed months with a credit note"
        )
    return f"{where}{f', {field}' if field else ''}: {message}"


def add_service_error(form, exc: BaseException, *, field_map: dict[str, str] | None = None):
    """Turn a service refusal into a form error on the named field, or a non-field error."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            target = (field_map or {}).get(field, field)
            form.add_error(target if target in form.fields else None, errors)
        return
    rows = _error_rows(exc)
    if rows:
        for row in rows[:50]:
            form.add_error(None, _row_error_text(row))
        return
    field = getattr(exc, "field", None)
    field = (field_map or {}).get(field, field)
    form.add_error(field if field in form.fields else None, error_message(exc))


def render_form_page(
    request,
    *,
    model_admin,
    form,
    title: str,
    obj=None,
    intro: str = "",
    submit_label: str = "Save",
    template: str = "admin/billing/form_page.html",
    extra: dict | None = None,
):
    """A custom admin page with one form, the admin's look and breadcrumbs."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "app_label": opts.app_label,
        "title": title,
        "form": form,
        "original": obj,
        "intro": intro,
        "submit_label": submit_label,
        "has_view_permission": model_admin.has_view_permission(request, obj),
        "media": model_admin.media + form.media,
        "is_multipart": form.is_multipart(),
    }
    context.update(extra or {})
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template, context)


def message_service_error(request, exc: BaseException, prefix: str = "") -> None:
    messages.error(request, f"{prefix}{error_message(exc)}")


class ReadOnlyAdminMixin:
    """Records nobody edits by hand: written by services only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TitledChangeViewMixin:
    """A plain title on the object page ("Invoice" rather than Django's "View invoice")."""

    change_title: str | None = None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if self.change_title:
            extra_context = {"title": self.change_title, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)


class UniqueRaceFormErrorMixin:
    """Two users saving the same key at once (a plan's price for one date, a VAT rate's
    month, a code) both pass the form's unique checks; the database refuses the second save
    and the admin's transaction rolls it back. The page is then built again from the same
    post: the form's checks now see the row the other user committed and show why, as a form
    error, instead of a server error. Asked once: a second refusal is not a race."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IntegrityError:
            if request.method != "POST":
                raise
            return super().changeform_view(request, object_id, form_url, extra_context)


class HistoryViewOnlyMixin:
    """simple-history's "revert" would rewrite a row in place (a price, an invoice): the
    history pages are for reading only."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True


def choices_from(values: Iterable[str]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]

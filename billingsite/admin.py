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
from collections.abc import Iterable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from billingsite.clock import billing_date


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


AUDIT_PAGE_SIZE = 50


class FinanceAdminSite(admin.AdminSite):
    site_header = "IM billing back-office"
    site_title = "IM billing"
    index_title = "The month at a glance"
    index_template = "admin/finance_index.html"
    # Finance pages are wide tables; the index and the breadcrumbs are the navigation.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        # The kernel imports no app at module level: the dashboard is looked up per request.
        from invoices.admin.dashboard import month_at_a_glance  # noqa: PLC0415

        # The figures name customers and amounts: only for those who may read both.
        may_read = request.user.has_perms(["invoices.view_invoice", "accounts.view_customer"])
        context = {
            "dashboard": month_at_a_glance(today=billing_date(timezone.now()), now=timezone.now())
            if may_read
            else None,
            "perms_for_links": _link_permissions(request.user),
        }
        context.update(extra_context or {})
        return super().index(request, extra_context=context)

    def get_urls(self):
        return [
            path("audit/", self.admin_view(self.audit_view), name="audit"),
        ] + super().get_urls()

    def audit_view(self, request):
        # The kernel imports no app at module level: the audit trail is looked up per request.
        from invoices.admin.dashboard import (  # noqa: PLC0415
            AUDIT_KINDS,
            AuditFilters,
            AuditTrail,
        )

        allowed = [kind for kind in AUDIT_KINDS if request.user.has_perm(kind.permission)]
        if not allowed:
            raise PermissionDenied
        form = AuditFilterForm(request.GET, kinds=allowed)
        # Bad filters (a date that is none) are shown on the form; the list is then unfiltered.
        data = form.cleaned_data if form.is_valid() else {}
        wanted = data.get("kind") or ""
        filters = AuditFilters(
            kinds=frozenset(kind.code for kind in allowed if not wanted or kind.code == wanted),
            username=data.get("user") or "",
            customer=data.get("customer") or "",
            since=data.get("since"),
            until=data.get("until"),
        )
        trail = AuditTrail(filters)
        export = request.GET.get("export")
        if export in AUDIT_EXPORT_FORMATS:
            return _audit_export(trail, export)
        page = Paginator(trail, AUDIT_PAGE_SIZE).get_page(request.GET.get("p"))
        query = request.GET.copy()
        query.pop("p", None)
        query.pop("export", None)
        context = {
            **self.each_context(request),
            "title": "Audit trail",
            "subtitle": "Who changed a price, recorded a deposit, issued or credited an "
            "invoice, and when",
            "entries": page.object_list,
            "page": page,
            "query": query.urlencode(),
            "form": form,
            "kinds": allowed,
            "selected_kind": wanted,
            "selected_user": data.get("user") or "",
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/billing/audit.html", context)


class AuditFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False)
    user = forms.CharField(required=False, max_length=150, strip=True)
    customer = forms.CharField(required=False, max_length=200, strip=True)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, kinds, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "Everything")] + [
            (kind.code, kind.label) for kind in kinds
        ]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise ValidationError("The first day is after the last day.")
        return cleaned


AUDIT_EXPORT_FORMATS = ("csv", "xlsx")
# Rows read per query while exporting: bounded memory per step, a fixed number of queries each.
AUDIT_EXPORT_CHUNK = 1000


def _audit_export(trail, fmt: str):
    """The whole filtered trail as CSV (UTF-8 with BOM) or XLSX, through the list exports'
    library (billingsite.exports)."""
    # This module is imported while the apps load (FinanceAdminConfig); the export library's
    # admin module needs them loaded.
    from billingsite.exports import audit_export_response  # noqa: PLC0415

    entries = []
    total = trail.count()
    for start in range(0, total, AUDIT_EXPORT_CHUNK):
        entries += trail[start : start + AUDIT_EXPORT_CHUNK]
    return audit_export_response(entries, fmt=fmt)


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

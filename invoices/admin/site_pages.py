"""The finance site's own pages: the index's month at a glance and the audit trail.

The site (`billingsite.admin.FinanceAdminSite`, the kernel's) shows what this module hands it
when autodiscovery imports the invoices admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from billingsite.clock import billing_date
from billingsite.exports import audit_export_response
from invoices.admin.dashboard import (
    AUDIT_KINDS,
    AuditFilters,
    AuditTrail,
    finance_charts,
    month_at_a_glance,
)

AUDIT_PAGE_SIZE = 50


def index_figures(request: HttpRequest) -> dict[str, object]:
    # The figures name customers and amounts: only for those who may read both.
    may_read = request.user.has_perms(["invoices.view_invoice", "accounts.view_customer"])
    today = billing_date(timezone.now())
    return {
        "dashboard": month_at_a_glance(today=today, now=timezone.now()) if may_read else None,
        "charts": finance_charts(today=today) if may_read else None,
    }


def audit_view(request: HttpRequest) -> HttpResponse:
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
        **admin.site.each_context(request),
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
    request.current_app = admin.site.name
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
    entries = []
    total = trail.count()
    for start in range(0, total, AUDIT_EXPORT_CHUNK):
        entries += trail[start : start + AUDIT_EXPORT_CHUNK]
    return audit_export_response(entries, fmt=fmt)


admin.site.index_figures = index_figures
admin.site.page_add("audit/", audit_view, name="audit")

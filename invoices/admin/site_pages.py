"""The finance site's own pages: the index's month at a glance and the audit trail.

The site (`billingsite.admin.FinanceAdminSite`, the kernel's) shows what this module hands it
when autodiscovery imports the invoices admin."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from billingsite.clock import billing_date
from invoices.admin.dashboard import AUDIT_KINDS, audit_trail, month_at_a_glance

AUDIT_PAGE_SIZE = 50


def index_figures(request: HttpRequest) -> dict[str, object]:
    # The figures name customers and amounts: only for those who may read both.
    may_read = request.user.has_perms(["invoices.view_invoice", "accounts.view_customer"])
    return {
        "dashboard": month_at_a_glance(today=billing_date(timezone.now()), now=timezone.now())
        if may_read
        else None
    }


def audit_view(request: HttpRequest) -> HttpResponse:
    allowed = [kind for kind in AUDIT_KINDS if request.user.has_perm(kind.permission)]
    if not allowed:
        raise PermissionDenied
    wanted = request.GET.get("kind", "")
    kinds = [kind for kind in allowed if not wanted or kind.code == wanted]
    username = request.GET.get("user", "").strip()
    entries = audit_trail(kinds=[kind.code for kind in kinds], username=username or None)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("p"))
    query = request.GET.copy()
    query.pop("p", None)
    context = {
        **admin.site.each_context(request),
        "title": "Audit trail",
        "subtitle": "Who changed a price, recorded a deposit, issued or credited an "
        "invoice, and when",
        "entries": page.object_list,
        "page": page,
        "query": query.urlencode(),
        "kinds": allowed,
        "selected_kind": wanted,
        "selected_user": username,
    }
    request.current_app = admin.site.name
    return TemplateResponse(request, "admin/billing/audit.html", context)


admin.site.index_figures = index_figures
admin.site.page_add("audit/", audit_view, name="audit")

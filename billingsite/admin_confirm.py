"""The confirmation step of the admin's money actions (deposits, adjustments, credit notes).

The first post of a valid form shows what the write would do and writes nothing; the page posts
the same fields (with the same idempotency token) again with `_confirm`, and only that post
writes. A confirmation shown for one balance is shown again, with a warning, when the balance
moved before it was confirmed."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.template.response import TemplateResponse

CONFIRM = "_confirm"
EDIT = "_edit"
SEEN_BALANCE = "_seen_balance"
_CONTROL_FIELDS = {"csrfmiddlewaretoken", "_save", CONFIRM, EDIT, SEEN_BALANCE}


def is_confirmed(request) -> bool:
    return request.method == "POST" and CONFIRM in request.POST and EDIT not in request.POST


def balance_moved(request, *, balance: Decimal) -> bool:
    """True when the balance the confirmation page showed is no longer the balance."""
    try:
        return Decimal(request.POST.get(SEEN_BALANCE, "")) != balance
    except InvalidOperation:
        return True


def render_confirm_page(
    request,
    *,
    model_admin,
    obj,
    title: str,
    preview,
    facts: list[tuple[str, str]],
    submit_label: str,
    notes: list[str] | None = None,
    moved: bool = False,
):
    """`preview`: an `accounts.balance_preview.BalancePreview`; `facts`: (label, value) rows of
    what is about to be written; `notes`: more consequences (e.g. an approval still needed)."""
    resend = [
        (name, value)
        for name in request.POST
        if name not in _CONTROL_FIELDS
        for value in request.POST.getlist(name)
    ]
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "app_label": opts.app_label,
        "title": title,
        "original": obj,
        "preview": preview,
        "facts": facts,
        "notes": notes or [],
        "moved": moved,
        "resend": resend,
        "submit_label": submit_label,
        "seen_balance": f"{preview.balance_before:.2f}",
        "has_view_permission": model_admin.has_view_permission(request, obj),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/billing/confirm_money.html", context)

"""The portal's top-up pages: the form (amount, method), the order page that shows the WeChat
Pay QR code or waits for Alipay's confirmation, and the status the page polls.

Thin: ordering and settling live in `accounts.payments.services`; the money arrives only by
the provider's verified word (notification or query), never by the customer's return here.
"""

from __future__ import annotations

import segno
from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import TopUp
from accounts.payments.providers import ProviderUnavailable
from accounts.payments.services import TopUpError, top_up_create
from accounts.selectors import ledger_balance
from billingsite.money import format_cny
from invoices.portal.topup_form import top_up_context
from invoices.portal.views import _render, customer_view

POLL_SECONDS = 2


def _return_url(request):
    def url(number: str) -> str:
        path = reverse("portal:top-up-detail", args=[number])
        if settings.BILLING_PUBLIC_BASE_URL:
            return settings.BILLING_PUBLIC_BASE_URL + path
        return request.build_absolute_uri(path)

    return url


@customer_view
@require_http_methods(["GET", "POST"])
def top_up(request, customer):
    if request.method == "GET":
        return _render(
            request,
            customer,
            "portal/top_up.html",
            top_up_context(customer=customer),
            nav="balance",
        )
    amount = request.POST.get("amount", "")
    method = request.POST.get("method", "")
    try:
        order = top_up_create(
            customer=customer,
            amount=amount,
            method=method,
            now=timezone.now(),
            return_url=_return_url(request),
        )
    except (TopUpError, ProviderUnavailable) as error:
        context = top_up_context(
            customer=customer, amount=amount, method=method, error=_refusal(error)
        )
        status = 400 if isinstance(error, TopUpError) else 503
        return _render(
            request, customer, "portal/top_up.html", context, nav="balance", status=status
        )
    if order.redirect_url:
        return redirect(order.redirect_url)
    return redirect("portal:top-up-detail", order.number)


def _refusal(error: Exception) -> str:
    """The customer's words for a refused top-up (the services' messages are finance's)."""
    if isinstance(error, ProviderUnavailable):
        return _("The payment provider cannot be reached right now. Please try again shortly.")
    if getattr(error, "field", "") == "method":
        return _("Choose one of the payment methods offered.")
    return _("Enter an amount from %(min)s to %(max)s, with at most two decimal places.") % {
        "min": format_cny(settings.BILLING_TOP_UP_MIN),
        "max": format_cny(settings.BILLING_TOP_UP_MAX),
    }


def _order(customer, number: str) -> TopUp:
    order = TopUp.objects.filter(customer=customer, number=number).first()
    if order is None:
        raise Http404("no such top-up")
    return order


@customer_view
@require_GET
def top_up_detail(request, customer, number: str):
    order = _order(customer, number)
    now = timezone.now()
    waiting = order.status == TopUp.Status.CREATED
    qr_svg = ""
    if waiting and order.code_url and now < order.expires_at:
        qr_svg = mark_safe(  # segno's SVG of our own provider's code_url
            segno.make(order.code_url, error="m").svg_inline(scale=5, title="WeChat Pay")
        )
    return _render(
        request,
        customer,
        "portal/top_up_detail.html",
        {
            "order": order,
            "waiting": waiting,
            "qr_svg": qr_svg,
            "poll_seconds": POLL_SECONDS,
            "balance": ledger_balance(customer=customer),
        },
        nav="balance",
    )


@customer_view
@require_GET
def top_up_status(request, customer, number: str):
    order = _order(customer, number)
    return JsonResponse(
        {
            "number": order.number,
            "status": order.status,
            "balance": str(ledger_balance(customer=customer)),
        }
    )

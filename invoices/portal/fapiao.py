"""The customer's fapiao request for an issued invoice, its status, and the fapiao's file.

Thin: the rules are `invoices.documents.fapiao`'s. Every read starts from the logged-in user's
customer (`visible_invoices`, `customer_fapiao_requests`): another customer's invoice or file is
a 404, as everywhere in the portal.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods

from invoices.documents.fapiao import (
    BuyerDetails,
    FapiaoError,
    customer_fapiao_requests,
    fapiao_amounts,
    fapiao_defaults,
    fapiao_file_response,
    fapiao_request_create,
    fapiao_request_live,
)
from invoices.models import FapiaoRequest
from invoices.portal.views import _render, customer_view, visible_invoices


class FapiaoRequestForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Fapiao type"), choices=FapiaoRequest.Kind.choices, widget=forms.RadioSelect
    )
    buyer_title = forms.CharField(label=_("Buyer title (company name)"), max_length=200)
    buyer_tax_id = forms.CharField(
        label=_("Tax ID (unified social credit code)"),
        max_length=18,
        help_text=_("18 characters, as on the business licence."),
    )
    buyer_address = forms.CharField(label=_("Registered address"), max_length=300, required=False)
    buyer_phone = forms.CharField(label=_("Registered phone"), max_length=40, required=False)
    buyer_bank = forms.CharField(label=_("Bank"), max_length=200, required=False)
    buyer_account = forms.CharField(label=_("Bank account"), max_length=64, required=False)


def _invoice(customer, number: str):
    return get_object_or_404(visible_invoices(customer=customer), number=number)


@customer_view
@require_http_methods(["GET", "POST"])
def fapiao_request(request, customer, number: str):
    invoice = _invoice(customer, number)
    live = fapiao_request_live(invoice=invoice)
    form = FapiaoRequestForm(
        request.POST if request.method == "POST" and live is None else None,
        initial=fapiao_defaults(customer=customer),
    )
    if request.method == "POST" and live is None and form.is_valid():
        try:
            fapiao_request_create(
                invoice=invoice,
                customer=customer,
                details=BuyerDetails(**form.cleaned_data),
                now=timezone.now(),
                requested_by=request.user,
            )
        except FapiaoError as refusal:
            form.add_error(refusal.field if refusal.field in form.fields else None, refusal.message)
        else:
            messages.success(request, _("Your fapiao request was sent to our finance team."))
            return redirect("portal:fapiao-request", number=invoice.number)
    history = customer_fapiao_requests(customer=customer).filter(invoice=invoice)
    return _render(
        request,
        customer,
        "portal/fapiao_request.html",
        {
            "invoice": invoice,
            "live": live,
            "form": form,
            "requests": history.order_by("-requested_at", "-id"),
            "amounts": fapiao_amounts(invoice=invoice),
        },
        nav="invoices",
        status=400 if request.method == "POST" and form.errors else 200,
    )


@customer_view
@require_GET
def fapiao_file(request, customer, number: str, request_id: int):
    fapiao = get_object_or_404(
        customer_fapiao_requests(customer=customer).select_related("invoice"),
        pk=request_id,
        invoice__number=number,
        status=FapiaoRequest.Status.ISSUED,
    )
    return fapiao_file_response(fapiao)

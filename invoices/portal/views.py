"""The customer invoice pages: invoices, credit notes, balance, this month's estimate, PDFs.

Every page is for a logged-in customer user and reads only that user's customer: each query
below starts from `portal_customer(request)`, and a document of another customer is a 404
(never a 403, which would confirm that the number exists). Only issued documents are shown;
drafts and held invoices are finance's work in progress. Views stay thin: figures come from
the selectors (`invoices.selectors`, `accounts.selectors`) and the one rating engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import wraps

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.arrears import ARREARS_GRACE_DAYS, suspension_date
from accounts.low_balance import LowBalanceSettingError, customer_runway, low_balance_alert_set
from accounts.models import Customer, CustomerUser
from accounts.payments.how_to_pay import how_to_pay
from accounts.promo_credit import promo_credit
from accounts.selectors import ledger_balance, ledger_balance_in_statement, ledger_statement
from billingsite.clock import Period, billing_date
from billingsite.login_forms import BoundedAuthenticationForm
from billingsite.money import parse_amount
from billingsite.queries import compiled_read
from invoices.charts import balance_history_chart, usage_charts_for_lines
from invoices.documents.fapiao import fapiao_live_status
from invoices.documents.pdf import (
    credit_note_ledger_entry,
    credit_note_pdf_filename,
    invoice_ledger_entry,
    invoice_pdf_filename,
    issuer,
    render_credit_note_pdf,
    render_invoice_pdf,
)
from invoices.models import CreditNote, FapiaoRequest, Invoice, InvoiceLine
from invoices.portal.rows import invoice_rows, ledger_rows
from invoices.portal.topup_form import top_up_context
from invoices.selectors import customer_financials, month_estimate
from plans.rating.engine import RatingError

PAGE_SIZE = 24
LEDGER_PAGE_SIZE = 50


# --- who is asking --------------------------------------------------------------------------


def portal_customer_of(user) -> Customer | None:
    """The customer a login belongs to (None: anonymous, or a login without a customer)."""
    if not user.is_authenticated:
        return None
    # The session's login backend read the link and its customer with the user
    # (billingsite.auth_backend): the same rows, no second query.
    if _CUSTOMER_LINK.is_cached(user):
        link = _CUSTOMER_LINK.get_cached_value(user)
        return link.customer if link is not None else None
    return _customer_of_user.first(user_id=user.pk)


# User.customer_link's cache (a OneToOneRel): set, possibly to None, by select_related.
_CUSTOMER_LINK = CustomerUser._meta.get_field("user").remote_field


@compiled_read
def _customer_of_user(*, user_id: int):
    # One query for the link and its customer (user.customer_link.customer would be two).
    return Customer.objects.filter(users__user_id=user_id)[:1]


def _default_language(request: HttpRequest, customer: Customer) -> None:
    """The page speaks the customer's preferred language until this browser picks one with the
    header's switch (Django's language cookie)."""
    if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return
    translation.activate(customer.preferred_language)
    request.LANGUAGE_CODE = translation.get_language()


def customer_view(view):
    """Login required (anonymous -> login page); a login not linked to a customer gets a
    plain 403 page; the view receives the customer as its second argument."""

    @login_required
    @never_cache
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        customer = portal_customer_of(request.user)
        if customer is None:
            return render(request, "portal/no_customer.html", {"issuer": issuer()}, status=403)
        request.portal_customer = customer
        _default_language(request, customer)
        return view(request, customer, *args, **kwargs)

    return wrapper


# --- arrears --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrearsState:
    """What the banner tells a customer whose balance is negative."""

    balance: Decimal
    since: dt.date
    suspension_date: dt.date
    suspended: bool
    suspended_on: dt.date | None
    today: dt.date

    @property
    def amount_owed(self) -> Decimal:
        return -self.balance

    @property
    def grace_days(self) -> int:
        """Days of arrears before suspension (the policy's, for the banner's words)."""
        return ARREARS_GRACE_DAYS

    @property
    def last_day_to_pay(self) -> dt.date:
        return self.suspension_date - dt.timedelta(days=1)

    @property
    def days_to_suspension(self) -> int:
        return (self.suspension_date - self.today).days

    @property
    def suspension_due(self) -> bool:
        """Suspension date reached and the daily check has not run yet."""
        return not self.suspended and self.today >= self.suspension_date


def arrears_state(*, customer: Customer, today: dt.date) -> ArrearsState | None:
    if customer.arrears_since is None and customer.suspended_at is None:
        return None
    balance = ledger_balance(customer=customer)
    since = customer.arrears_since or billing_date(customer.suspended_at)
    return ArrearsState(
        balance=balance,
        since=since,
        suspension_date=suspension_date(arrears_since=since),
        suspended=customer.suspended_at is not None,
        suspended_on=billing_date(customer.suspended_at) if customer.suspended_at else None,
        today=today,
    )


def _today() -> dt.date:
    return billing_date(timezone.now())


def _page(request: HttpRequest, items, size: int, param: str = "page"):
    """One page of `items` (the `param` query parameter's, the last one if beyond)."""
    return Paginator(items, size).get_page(request.GET.get(param))


def _render(request: HttpRequest, customer: Customer, template: str, context: dict, **kwargs):
    today = _today()
    base = {
        "customer": customer,
        "today": today,
        "arrears": arrears_state(customer=customer, today=today),
        "issuer": issuer(),
        "pay": how_to_pay(customer=customer),
        "nav": kwargs.pop("nav", ""),
    }
    return render(request, template, {**base, **context}, **kwargs)


# --- documents ------------------------------------------------------------------------------


def visible_invoices(*, customer: Customer | int):
    """The customer's invoices that exist for them: issued, possibly credited since."""
    return Invoice.objects.filter(customer=customer, status__in=Invoice.ISSUED_STATES)


@compiled_read
def _visible_invoice(*, customer_id: int, number: str):
    """The invoice page's read: one visible invoice with its live fapiao request's status."""
    return (
        visible_invoices(customer=customer_id)
        .annotate(fapiao_status=fapiao_live_status())
        .filter(number=number)[:1]
    )


@compiled_read
def _invoice_lines(*, invoice_id: int):
    return InvoiceLine.objects.filter(invoice_id=invoice_id).order_by("position")


@compiled_read
def _invoice_credit_notes(*, invoice_id: int):
    return CreditNote.objects.filter(invoice_id=invoice_id).order_by("issued_at", "id")


def visible_credit_notes(*, customer: Customer | int):
    return CreditNote.objects.filter(customer=customer, invoice__customer=customer)


def _totals(documents) -> QuerySet:
    """The count and total of `documents` as one row (none when there are none)."""
    return (
        documents.order_by()
        .values("customer_id")
        .annotate(count=Count("id"), total=Sum("total", default=Decimal("0.00")))
        .values_list("count", "total")
    )


@compiled_read
def _invoice_totals(*, customer_id: int):
    return _totals(visible_invoices(customer=customer_id))


@compiled_read
def _credit_note_totals(*, customer_id: int):
    return _totals(visible_credit_notes(customer=customer_id))


@compiled_read
def _invoice_list(*, customer_id: int):
    return visible_invoices(customer=customer_id).order_by("-period", "-id")


@compiled_read
def _credit_note_list(*, customer_id: int):
    return (
        visible_credit_notes(customer=customer_id)
        .select_related("invoice")
        .order_by("-issued_at", "-id")
    )


def _compiled_page(
    request: HttpRequest, read, size: int, count: int, param: str = "page", **inputs
):
    """`_page` of a compiled read's rows, `count` of them (the list's totals counted them: no
    COUNT query): the page's number and bounds from the paginator over their positions, its
    rows in one statement of that read."""
    page = _page(request, range(count), size, param=param)
    bounds = page.object_list
    page.object_list = read.slice(bounds.start, bounds.stop, **inputs)
    return page


def _totals_of(read, customer: Customer) -> dict:
    count, total = read.first(customer_id=customer.pk) or (0, Decimal("0.00"))
    return {"count": count, "total": total}


@customer_view
@require_GET
def invoice_list(request, customer):
    invoice_totals = _totals_of(_invoice_totals, customer)
    credit_note_totals = _totals_of(_credit_note_totals, customer)
    invoices = _compiled_page(
        request, _invoice_list, PAGE_SIZE, invoice_totals["count"], customer_id=customer.pk
    )
    notes = _compiled_page(
        request,
        _credit_note_list,
        PAGE_SIZE,
        credit_note_totals["count"],
        param="notes_page",
        customer_id=customer.pk,
    )
    return _render(
        request,
        customer,
        "portal/invoice_list.html",
        {
            "invoices": invoices,
            "invoice_rows": invoice_rows(invoices),
            "credit_notes": notes,
            "balance": ledger_balance(customer=customer),
            "invoice_totals": invoice_totals,
            "credit_note_totals": credit_note_totals,
        },
        nav="invoices",
    )


@customer_view
@require_GET
def invoice_detail(request, customer, number: str):
    invoice = _visible_invoice.first(customer_id=customer.pk, number=number)
    if invoice is None:
        raise Http404
    debit = invoice_ledger_entry(invoice=invoice, with_balance=True)
    lines = _invoice_lines(invoice_id=invoice.pk)
    credit_notes = _invoice_credit_notes(invoice_id=invoice.pk)
    for document in (*lines, *credit_notes):
        document.invoice = invoice  # as invoice.lines / invoice.credit_notes would set it
    period = Period.containing(invoice.period)
    return _render(
        request,
        customer,
        "portal/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": lines,
            "period_end": period.end,
            "usage_charts": usage_charts_for_lines(
                customer_id=customer.pk, period=period, lines=lines
            ),
            "debit": debit,
            "balance_after_debit": debit.balance_in_statement if debit else None,
            "credit_notes": credit_notes,
            # The live fapiao request's status as get_status_display() says it (None: none).
            "fapiao_status": FapiaoRequest.Status(invoice.fapiao_status).label
            if invoice.fapiao_status
            else None,
        },
        nav="invoices",
    )


@customer_view
@require_GET
def invoice_pdf(request, customer, number: str):
    invoice = get_object_or_404(visible_invoices(customer=customer), number=number)
    return _pdf_response(render_invoice_pdf(invoice=invoice), invoice_pdf_filename(invoice))


@customer_view
@require_GET
def credit_note_detail(request, customer, number: str):
    note = get_object_or_404(
        visible_credit_notes(customer=customer).select_related("invoice"), number=number
    )
    credit = credit_note_ledger_entry(credit_note=note)
    return _render(
        request,
        customer,
        "portal/credit_note_detail.html",
        {
            "note": note,
            "lines": list(note.lines.select_related("invoice_line").order_by("id")),
            "credit": credit,
            "balance_after_credit": ledger_balance_in_statement(entry=credit) if credit else None,
        },
        nav="invoices",
    )


@customer_view
@require_GET
def credit_note_pdf(request, customer, number: str):
    note = get_object_or_404(visible_credit_notes(customer=customer), number=number)
    return _pdf_response(render_credit_note_pdf(credit_note=note), credit_note_pdf_filename(note))


def _pdf_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- money ----------------------------------------------------------------------------------


@customer_view
@require_GET
def balance(request, customer):
    return _balance_page(request, customer)


@customer_view
@require_POST
def low_balance(request, customer):
    """The customer's low-balance threshold (accounts.low_balance.low_balance_alert_set)."""
    alert = request.POST.get("low_balance_alert", "")
    raw = request.POST.get("low_balance_amount", "").strip()
    try:
        amount = parse_amount(raw) if raw else None
    except ValueError:
        amount = Decimal("NaN")  # refused by the service with its message
    try:
        low_balance_alert_set(customer=customer, alert=alert, amount=amount, now=timezone.now())
    except LowBalanceSettingError as error:
        return _balance_page(
            request,
            customer,
            low_balance_error=str(error),
            low_balance_form={"alert": alert, "amount": raw},
            status=400,
        )
    return redirect(reverse("portal:balance") + "#low-balance")


def _balance_page(request, customer, *, status=200, **extra):
    today = _today()
    try:
        financials = customer_financials(customer=customer, today=today)
        estimate_error = False
    except RatingError:
        financials, estimate_error = None, True
    entries = ledger_statement(customer=customer)
    page = _page(request, entries, LEDGER_PAGE_SIZE)
    references = {entry.reference for entry in page if entry.reference}
    invoice_numbers = set(
        visible_invoices(customer=customer)
        .filter(number__in=references)
        .values_list("number", flat=True)
    )
    note_numbers = set(
        visible_credit_notes(customer=customer)
        .filter(number__in=references)
        .values_list("number", flat=True)
    )
    balance_now = financials.balance if financials else ledger_balance(customer=customer)
    promo = promo_credit(customer=customer, now=timezone.now())
    runway, threshold = customer_runway(customer=customer, balance=balance_now)
    top_up = None
    if financials and financials.recommended_balance > balance_now:
        top_up = financials.recommended_balance - balance_now
    return _render(
        request,
        customer,
        "portal/balance.html",
        {
            "balance": balance_now,
            # The balance is paid balance + promotional credit held (accounts.promo_credit).
            "paid_balance": balance_now - promo.held,
            "promo_held": promo.held,
            "promo_grants": promo.available,
            "financials": financials,
            "estimate_error": estimate_error,
            "top_up": top_up,
            "entries": page,
            "ledger_rows": ledger_rows(
                page, invoice_numbers=invoice_numbers, note_numbers=note_numbers
            ),
            "page_total": sum((entry.amount.amount for entry in page), Decimal("0.00")),
            "balance_chart": balance_history_chart(customer_id=customer.pk, today=today),
            "invoice_numbers": invoice_numbers,
            "note_numbers": note_numbers,
            "runway": runway,
            "low_balance_threshold": threshold,
            "low_balance_choices": Customer.LowBalanceAlert.choices,
            "low_balance_form": {
                "alert": customer.low_balance_alert,
                "amount": ""
                if customer.low_balance_amount is None
                else customer.low_balance_amount,
            },
            **top_up_context(customer=customer),
            **extra,
        },
        nav="balance",
        status=status,
    )


@customer_view
@require_GET
def estimate(request, customer):
    today = _today()
    period = Period.containing(today)
    try:
        estimate = month_estimate(customer=customer, today=today)
    except RatingError:
        estimate = None
    rated = estimate.rated if estimate else None
    following = period.next()
    return _render(
        request,
        customer,
        "portal/estimate.html",
        {
            "rated": rated,
            # Drawn only once usage of the month has arrived: the page shows no chart before.
            "usage_charts": usage_charts_for_lines(
                customer_id=customer.pk,
                period=period,
                lines=estimate.rated.lines,
                dau_by_app=estimate.dau_by_app,
                book=estimate.book,
            )
            if estimate and estimate.usage_through
            else [],
            "period": period,
            "period_start": period.start,
            "period_end": period.end,
            "usage_through": estimate.usage_through if estimate else None,
            "days_elapsed": (today - period.start).days + 1,
            "bill_date": dt.date(following.year, following.month, 2),
            "balance": ledger_balance(customer=customer),
        },
        nav="estimate",
    )


@login_required
def home(request):
    return redirect("portal:invoice-list")


# --- authentication -------------------------------------------------------------------------


class CustomerPasswordResetForm(PasswordResetForm):
    """Resets only customer logins: staff passwords are managed by an administrator."""

    def get_users(self, email):
        for user in super().get_users(email):
            if portal_customer_of(user) is not None:
                yield user


class IssuerContextMixin:
    """The page header and footer name the issuer on the logged-out pages too."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "issuer": issuer()}


class PortalLoginView(IssuerContextMixin, auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = BoundedAuthenticationForm
    redirect_authenticated_user = True


class PortalPasswordResetView(IssuerContextMixin, auth_views.PasswordResetView):
    form_class = CustomerPasswordResetForm
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")


class PortalPasswordResetDoneView(IssuerContextMixin, auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"


class PortalPasswordResetConfirmView(IssuerContextMixin, auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password-reset-complete")


class PortalPasswordResetCompleteView(IssuerContextMixin, auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"

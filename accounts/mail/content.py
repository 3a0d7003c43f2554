"""What each customer e-mail says, in the customer's language.

A message is data (`Message`: heading, paragraphs, facts, next steps, a link, attachments);
one HTML template and one plain-text template render every kind, so both parts always say the
same. Builders are registered per event kind: this module registers the account kinds; the
invoices app registers its documents (invoice, credit note, statement) with their PDFs from
`InvoicesConfig.ready`, since accounts may not import invoices.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.payments.how_to_pay import how_to_pay
from accounts.selectors import ledger_balance
from billingsite.clock import billing_date
from billingsite.issuer import issuer, portal_url
from billingsite.money import format_cny

Kind = CustomerEvent.Kind


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/pdf"


@dataclass
class Message:
    subject: str
    heading: str
    paragraphs: list[str]
    # (label, value) rows: the figures the message is about.
    facts: list[tuple[str, str]] = field(default_factory=list)
    # What the customer should do now; every message has one.
    next_steps: list[str] = field(default_factory=list)
    # (label, absolute URL) of the page to open.
    action: tuple[str, str] | None = None
    # "info", "warning" or "danger": the colour of the heading band.
    tone: str = "info"
    attachments: list[Attachment] = field(default_factory=list)


Builder = Callable[[CustomerEvent], Message]
_BUILDERS: dict[str, Builder] = {}


def message_builder(*kinds: str) -> Callable[[Builder], Builder]:
    """Register the function that writes the message of these event kinds."""

    def register(builder: Builder) -> Builder:
        for kind in kinds:
            _BUILDERS[str(kind)] = builder
        return builder

    return register


def money(value) -> str:
    return "—" if value in (None, "") else format_cny(Decimal(value))


def day(value) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return value.isoformat()


def payload_balance(event: CustomerEvent) -> Decimal:
    """The balance the event speaks of; the run's arrears events may carry none."""
    raw = event.payload.get("balance")
    return Decimal(raw) if raw not in (None, "") else ledger_balance(customer=event.customer_id)


# --- the account kinds ---------------------------------------------------------------------


def top_up_step(owed: Decimal) -> str:
    return _("Top up at least %(owed)s: see “How to pay” below.") % {"owed": money(owed)}


@message_builder(Kind.ARREARS_STARTED)
def arrears_started_message(event: CustomerEvent) -> Message:
    data = event.payload
    balance = payload_balance(event)
    return Message(
        subject=_("Your balance is negative: please top up"),
        heading=_("Your prepaid balance is negative"),
        paragraphs=[
            _("Your prepaid balance is %(balance)s since %(since)s.")
            % {"balance": money(balance), "since": day(data.get("arrears_since"))},
            _(
                "Unless it is restored to zero or above, your applications will be suspended "
                "on %(date)s."
            )
            % {"date": day(data.get("suspension_date"))},
        ],
        facts=[
            (_("Balance"), money(balance)),
            (_("Suspension date"), day(data.get("suspension_date"))),
        ],
        next_steps=[top_up_step(max(-balance, Decimal(0)))],
        action=(_("See your balance"), portal_url("/balance/")),
        tone="warning",
    )


@message_builder(Kind.SUSPENSION_WARNING)
def suspension_warning_message(event: CustomerEvent) -> Message:
    data = event.payload
    balance = payload_balance(event)
    raw = data.get("suspension_date")
    suspension = dt.date.fromisoformat(raw) if raw else billing_date(event.created_at)
    return Message(
        subject=_("Your service will be suspended on %(date)s") % {"date": day(suspension)},
        heading=_("Your service will be suspended on %(date)s") % {"date": day(suspension)},
        paragraphs=[
            _(
                "Your prepaid balance is %(balance)s. Your applications will be suspended on "
                "%(date)s unless you top up before then."
            )
            % {"balance": money(balance), "date": day(suspension)},
        ],
        facts=[
            (_("Balance"), money(balance)),
            (_("Negative since"), day(data.get("arrears_since"))),
            (_("Last day to pay"), day(suspension - dt.timedelta(days=1))),
            (_("Suspension date"), day(suspension)),
        ],
        next_steps=[top_up_step(max(-balance, Decimal(0)))],
        action=(_("See your balance"), portal_url("/balance/")),
        tone="danger",
    )


@message_builder(Kind.SUSPENDED)
def suspended_message(event: CustomerEvent) -> Message:
    data = event.payload
    balance = payload_balance(event)
    return Message(
        subject=_("Your service is suspended"),
        heading=_("Your service is suspended"),
        paragraphs=[
            _(
                "Your balance has been negative since %(since)s, so your applications were "
                "suspended on %(date)s."
            )
            % {"since": day(data.get("arrears_since")), "date": day(data.get("suspended_on"))},
            _("A deposit that brings the balance to zero or above reactivates them at once."),
        ],
        facts=[(_("Balance"), money(balance)), (_("Suspended on"), day(data.get("suspended_on")))],
        next_steps=[top_up_step(max(-balance, Decimal(0)))],
        action=(_("See your balance"), portal_url("/balance/")),
        tone="danger",
    )


@message_builder(Kind.REACTIVATED)
def reactivated_message(event: CustomerEvent) -> Message:
    balance = payload_balance(event)
    return Message(
        subject=_("Your service is active again"),
        heading=_("Your service is active again"),
        paragraphs=[
            _("Thank you: your balance is %(balance)s and your applications are active.")
            % {"balance": money(balance)}
        ],
        facts=[(_("Balance"), money(balance))],
        next_steps=[
            _(
                "Nothing to do now. Keep the balance above your monthly fees so the next "
                "invoice does not start arrears again."
            )
        ],
        action=(_("See your balance"), portal_url("/balance/")),
    )


@message_builder(Kind.PAYMENT_RECEIVED)
def payment_received_message(event: CustomerEvent) -> Message:
    data = event.payload
    facts = [
        (_("Amount received"), money(data.get("amount"))),
        (_("Received on"), day(data.get("received_on"))),
    ]
    if data.get("method") in LedgerEntry.Method.values:
        facts.append((_("Paid by"), str(LedgerEntry.Method(data["method"]).label)))
    if data.get("reference"):
        facts.append((_("Reference"), data.get("reference")))
    if data.get("balance_after") is not None:
        facts.append((_("Balance after this payment"), money(data.get("balance_after"))))
    return Message(
        subject=_("Payment received: %(amount)s") % {"amount": money(data.get("amount"))},
        heading=_("Thank you for your payment"),
        paragraphs=[
            _("We received %(amount)s on %(date)s and added it to your prepaid balance.")
            % {"amount": money(data.get("amount")), "date": day(data.get("received_on"))}
        ],
        facts=facts,
        next_steps=[_("Nothing to do: keep this e-mail as your receipt.")],
        action=(_("See your balance"), portal_url("/balance/")),
    )


@message_builder(Kind.BALANCE_LOW)
def balance_low_message(event: CustomerEvent) -> Message:
    data = event.payload
    balance = payload_balance(event)
    paragraphs = [_("Your prepaid balance is %(balance)s.") % {"balance": money(balance)}]
    facts = [(_("Balance"), money(balance))]
    if data.get("threshold"):
        paragraphs.append(
            _("It is below the alert threshold of %(threshold)s you chose on the balance page.")
            % {"threshold": money(data.get("threshold"))}
        )
        facts.append((_("Alert threshold"), money(data.get("threshold"))))
    if data.get("days_left") is not None:
        paragraphs.append(
            _("At your last invoice's fees it lasts about %(days)s days.")
            % {"days": data.get("days_left")}
        )
        facts.append((_("Days the balance lasts"), str(data.get("days_left"))))
    steps = []
    if data.get("recommended_balance"):
        recommended = Decimal(data.get("recommended_balance"))
        facts.append((_("Recommended balance"), money(recommended)))
        steps.append(
            _(
                "Top up to the recommended balance of %(recommended)s (three months of fees) "
                "so invoices never take it below zero."
            )
            % {"recommended": money(recommended)}
        )
    else:
        steps.append(_("Top up so the next invoices do not take the balance below zero."))
    return Message(
        subject=_("Your prepaid balance is low: %(balance)s") % {"balance": money(balance)},
        heading=_("Your prepaid balance is low"),
        paragraphs=paragraphs,
        facts=facts,
        next_steps=steps,
        action=(_("See your balance"), portal_url("/balance/")),
        tone="warning",
    )


def fallback_message(event: CustomerEvent) -> Message:
    """A kind without a builder (its app is not installed): its name and payload."""
    return Message(
        subject=event.get_kind_display(),
        heading=event.get_kind_display(),
        paragraphs=[", ".join(f"{k}: {v}" for k, v in sorted(event.payload.items()))],
        next_steps=[_("Open the invoice page for details.")],
        action=(_("Open the invoice page"), portal_url("/")),
    )


# --- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    language: str
    subject: str
    text: str
    html: str
    attachments: list[Attachment]

    def message_to(self, recipient: str) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            subject=self.subject,
            body=self.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient],
            reply_to=[issuer()["email"]],
        )
        message.attach_alternative(self.html, "text/html")
        for attachment in self.attachments:
            message.attach(attachment.filename, attachment.content, attachment.mimetype)
        return message


_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def email_language(customer: Customer) -> str:
    return customer.preferred_language or settings.LANGUAGE_CODE


def email_render(*, event: CustomerEvent, language: str | None = None) -> RenderedEmail:
    """The event's e-mail in the customer's language (or `language`): subject, plain text,
    HTML with its CSS inlined (mail clients drop <style>), attachments."""
    customer = event.customer
    language = language or email_language(customer)
    with translation.override(language):
        message = _BUILDERS.get(event.kind, fallback_message)(event)
        context = {
            "message": message,
            "customer": customer,
            "issuer": issuer(),
            "pay": how_to_pay(customer=customer),
            "balance_now": money(ledger_balance(customer=customer)),
            "contacts_url": portal_url("/contacts/"),
            "language": language,
        }
        text = render_to_string("email/message.txt", context)
        html = _inliner.inline(render_to_string("email/message.html", context))
    return RenderedEmail(
        language=language,
        subject=" ".join(message.subject.split())[:300],
        text=text,
        html=html,
        attachments=message.attachments,
    )

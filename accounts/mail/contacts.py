"""Billing contacts: which addresses receive which kind of message."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from accounts.models import BillingContact, Customer, CustomerEvent

Kind = CustomerEvent.Kind

# The contact flag that selects the recipients of each kind of message.
RECEIVES = {
    Kind.INVOICE_ISSUED: "receives_invoices",
    Kind.CREDIT_NOTE_ISSUED: "receives_invoices",
    Kind.MONTHLY_STATEMENT: "receives_invoices",
    Kind.FAPIAO_ISSUED: "receives_invoices",
    Kind.FAPIAO_REJECTED: "receives_invoices",
    Kind.ARREARS_STARTED: "receives_warnings",
    Kind.SUSPENSION_WARNING: "receives_warnings",
    Kind.SUSPENDED: "receives_warnings",
    Kind.REACTIVATED: "receives_warnings",
    Kind.BALANCE_LOW: "receives_warnings",
    Kind.PAYMENT_RECEIVED: "receives_receipts",
}


def normalized_email(email: str) -> str:
    """Addresses compare case-insensitively (one delivery row per address)."""
    return (email or "").strip().lower()


def billing_recipients(*, customer: Customer, kind: str) -> list[tuple[str, BillingContact | None]]:
    """(address, contact) of everyone who receives this kind of message. When no contact
    ticks the kind, the customer's billing_email receives it: a customer is never left
    without its invoices or its arrears warnings by an unticked box."""
    flag = RECEIVES.get(kind, "receives_invoices")
    contacts = list(customer.billing_contacts.filter(**{flag: True}).order_by("id"))
    if not contacts:
        primary = customer.billing_contacts.filter(email__iexact=customer.billing_email).first()
        return [(normalized_email(customer.billing_email), primary)]
    seen: dict[str, BillingContact] = {}
    for contact in contacts:
        seen.setdefault(normalized_email(contact.email), contact)
    return list(seen.items())


def primary_contact_ensure(*, customer: Customer) -> BillingContact:
    """The customer's billing_email is one of its contacts (every kind when it is new): called
    when a customer is created and when finance changes its billing_email."""
    with transaction.atomic():
        contact = customer.billing_contacts.filter(email__iexact=customer.billing_email).first()
        if contact is None:
            contact = BillingContact.objects.create(customer=customer, email=customer.billing_email)
    return contact


def contact_record_bounce(*, customer_id: int, email: str, reason: str, now: dt.datetime) -> None:
    """The mail server refused the address: finance sees it on the contact."""
    BillingContact.objects.filter(customer_id=customer_id, email__iexact=email).update(
        bounced_at=now, bounce_reason=reason[:500]
    )


def contact_record_accepted(*, customer_id: int, email: str) -> None:
    BillingContact.objects.filter(
        customer_id=customer_id, email__iexact=email, bounced_at__isnull=False
    ).update(bounced_at=None, bounce_reason="")

"""Who issues the documents and e-mails, and where customers read them: deployment settings."""

from __future__ import annotations

from django.conf import settings


def issuer() -> dict[str, str]:
    return {
        "name": settings.BILLING_ISSUER_NAME,
        "address": settings.BILLING_ISSUER_ADDRESS,
        "email": settings.BILLING_ISSUER_EMAIL or settings.DEFAULT_FROM_EMAIL,
        "phone": settings.BILLING_ISSUER_PHONE,
        "payment_instructions": settings.BILLING_PAYMENT_INSTRUCTIONS,
        "bank_name": settings.BILLING_ISSUER_BANK_NAME,
        "bank_account": settings.BILLING_ISSUER_BANK_ACCOUNT,
        "bank_account_name": settings.BILLING_ISSUER_BANK_ACCOUNT_NAME,
    }


def portal_url(path: str = "/") -> str:
    """An absolute link to the customer invoice page for e-mails."""
    return f"{settings.BILLING_PORTAL_URL}{path}"

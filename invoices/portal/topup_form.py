"""What the top-up form needs, on the balance page and on the top-up page."""

from __future__ import annotations

from django.conf import settings

from accounts.payments.providers import top_up_options


def top_up_context(*, customer, amount: str = "", method: str = "", error: str = "") -> dict:
    """What the top-up form needs (also on the balance page)."""
    options = top_up_options(customer=customer)
    online = [option for option in options if option.online]
    return {
        "top_up_options": options,
        "top_up_online": online,
        "top_up_min": settings.BILLING_TOP_UP_MIN,
        "top_up_max": settings.BILLING_TOP_UP_MAX,
        "top_up_amount": amount,
        "top_up_method": method or (online[0].method if online else ""),
        "top_up_error": error,
    }

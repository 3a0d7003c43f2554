"""What a payment provider tells us, and which providers this deployment offers.

A provider is configured by settings (its keys); one without keys is not offered. The balance
page lists `top_up_options(customer=...)`: the configured online providers, then whatever an
offline method registered with `register_top_up_option` (bank transfer plugs in there).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from accounts.models import Customer, TopUp

if TYPE_CHECKING:
    from django.http import HttpRequest


class PaymentRejected(Exception):
    """A notification we refuse (bad signature, not ours, malformed, stale): nothing changes
    and the provider is told it failed."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered an error: try again later."""


# A provider's amount at or above this is no payment of ours: orders (and `TopUp.paid_amount`,
# 14 digits with 2 decimals) cannot hold it, so a notification saying so is malformed.
MAX_PROVIDER_AMOUNT = Decimal("1e12")


@dataclass(frozen=True)
class ProviderPayment:
    """One verified statement by a provider about one of our orders (a notification or the
    answer to our query)."""

    method: str
    order_number: str
    # The provider's trade number; empty when the provider has not created a trade yet.
    trade_no: str
    # The money was received (Alipay TRADE_SUCCESS/TRADE_FINISHED, WeChat SUCCESS).
    paid: bool
    # The provider closed the trade unpaid.
    closed: bool
    amount: Decimal | None
    currency: str
    # Our app id (Alipay) or merchant id (WeChat) as the provider states it.
    merchant_id: str
    paid_at: dt.datetime | None
    raw: dict = field(repr=False)


@dataclass(frozen=True)
class PaymentStart:
    """How the customer pays: a page to send them to, or a code to show as a QR code."""

    redirect_url: str = ""
    code_url: str = ""


class Provider(Protocol):
    method: str

    def merchant_id(self) -> str: ...

    def start(self, *, top_up: TopUp, return_url: str) -> PaymentStart: ...

    def query(self, *, top_up: TopUp) -> ProviderPayment | None:
        """The provider's view of the order; None when it has no trade for it."""

    def close(self, *, top_up: TopUp) -> bool:
        """Close an unpaid order; False when the provider refuses because it was paid."""

    def parse_notification(self, request: HttpRequest) -> ProviderPayment:
        """Verify and read a notification; raises PaymentRejected."""


def _providers() -> dict[str, tuple[Callable[[], bool], Callable[[], Provider]]]:
    # Circular at import time: the provider modules import this module's types.
    from accounts.payments import alipay, wechat  # noqa: PLC0415

    return {
        alipay.METHOD: (alipay.is_configured, alipay.AlipayProvider),
        wechat.METHOD: (wechat.is_configured, wechat.WechatPayProvider),
    }


def configured_methods() -> list[str]:
    """The online methods whose keys are configured, in the order the page offers them."""
    return [method for method, (configured, _) in _providers().items() if configured()]


def provider_for(method: str) -> Provider:
    """The provider of a configured method; LookupError otherwise."""
    entry = _providers().get(method)
    if entry is None or not entry[0]():
        raise LookupError(f"payment method {method!r} is not configured")
    return entry[1]()


@dataclass(frozen=True)
class TopUpOption:
    """One way to top up shown on the balance page. `online` ones post the amount form;
    others (bank transfer) render their own `template` with `context`."""

    method: str
    label: str
    online: bool
    template: str = ""
    context: dict = field(default_factory=dict)


# Offline methods (bank transfer, issue 15 part B) append a function customer -> option | None.
_extra_options: list[Callable[[Customer], TopUpOption | None]] = []


def register_top_up_option(option: Callable[[Customer], TopUpOption | None]) -> None:
    if option not in _extra_options:
        _extra_options.append(option)


def top_up_options(*, customer: Customer) -> list[TopUpOption]:
    options = [
        TopUpOption(method=method, label=TopUp.Method(method).label, online=True)
        for method in configured_methods()
    ]
    for make in _extra_options:
        option = make(customer)
        if option is not None:
            options.append(option)
    return options

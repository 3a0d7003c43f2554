"""How a customer pays: what every "How to pay" says (portal banner and balance page,
arrears, suspension and low-balance e-mails, invoice page and PDF). One place, so the bank
account, the customer's transfer reference and the methods offered never differ between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from accounts.models import Customer, LedgerEntry
from accounts.payments.providers import TopUpOption, configured_methods, register_top_up_option
from billingsite.issuer import issuer, portal_url


@dataclass(frozen=True)
class HowToPay:
    # The customer's transfer reference, quoted in the remark of a bank transfer.
    reference: str
    # Labels of the methods available: the configured online ones, then bank transfer when
    # the issuer's account is configured.
    methods: list[str]
    bank_name: str
    bank_account: str
    bank_account_name: str
    # Online top-up is configured: the portal's Top up page (absolute, for e-mails).
    top_up_url: str
    contact_email: str
    contact_phone: str
    instructions: str


def how_to_pay(*, customer: Customer) -> HowToPay:
    details = issuer()
    online = configured_methods()
    methods = [str(LedgerEntry.Method(method).label) for method in online]
    if details["bank_account"]:
        methods.append(str(LedgerEntry.Method.BANK_TRANSFER.label))
    return HowToPay(
        reference=customer.transfer_reference,
        methods=methods,
        bank_name=details["bank_name"],
        bank_account=details["bank_account"],
        bank_account_name=details["bank_account_name"],
        top_up_url=portal_url("/balance/#top-up") if online else "",
        contact_email=details["email"],
        contact_phone=details["phone"],
        instructions=details["payment_instructions"],
    )


def bank_transfer_option(customer: Customer) -> TopUpOption | None:
    """Bank transfer on the balance page's Top up card, when the issuer's account is set."""
    pay = how_to_pay(customer=customer)
    if not pay.bank_account:
        return None
    return TopUpOption(
        method=LedgerEntry.Method.BANK_TRANSFER,
        label=str(_("Bank transfer")),
        online=False,
        template="portal/_bank_transfer.html",
        context={"pay": pay},
    )


register_top_up_option(bank_transfer_option)

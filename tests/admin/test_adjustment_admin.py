"""Positive manual adjustments in the back-office: the clerk's form proposes, a manager
approves or rejects from the adjustment requests list; the ledger moves only on approval."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import AdjustmentRequest, LedgerEntry
from accounts.selectors import ledger_balance
from tests.admin.conftest import as_user, post_confirmed

pytestmark = pytest.mark.django_db

REQUESTS_URL = "admin:accounts_adjustmentrequest_changelist"


def propose(client, customer, amount="1000000.00"):
    return post_confirmed(
        client,
        reverse("admin:accounts_customer_adjust", args=[customer.pk]),
        {"amount": amount, "reason": "Goodwill credit", "token": uuid.uuid4().hex},
        follow=True,
    )


def decide(client, proposal, action):
    return client.post(
        reverse(REQUESTS_URL),
        {"action": action, "_selected_action": [proposal.pk]},
        follow=True,
    )


def adjustment_entries(customer):
    return LedgerEntry.objects.filter(customer=customer, kind="adjustment")


def test_clerk_proposes_a_million_and_nothing_moves_until_a_manager_approves(
    client, clerk, manager, month
):
    as_user(client, clerk)
    response = propose(client, month.alpha)

    assert response.status_code == 200
    assert "proposed: it reaches the balance once a finance manager approves it" in (
        response.content.decode()
    )
    proposal = AdjustmentRequest.objects.get()
    assert (proposal.status, proposal.proposed_by, proposal.amount.amount) == (
        "proposed",
        clerk,
        Decimal("1000000.00"),
    )
    assert not adjustment_entries(month.alpha).exists()
    assert ledger_balance(customer=month.alpha) == Decimal("14000.00")

    # The clerk sees the request but is offered no decision: posting one changes nothing.
    listing = client.get(reverse(REQUESTS_URL))
    assert listing.status_code == 200 and "approve_selected" not in listing.content.decode()
    decide(client, proposal, "approve_selected")
    proposal.refresh_from_db()
    assert proposal.status == "proposed"
    assert not adjustment_entries(month.alpha).exists()

    as_user(client, manager)
    approved = decide(client, proposal, "approve_selected")
    assert "1 adjustment(s) approved." in approved.content.decode()
    decide(client, proposal, "approve_selected")  # a second approval posts nothing more

    [entry] = adjustment_entries(month.alpha)
    assert (entry.amount.amount, entry.created_by) == (Decimal("1000000.00"), manager)
    assert ledger_balance(customer=month.alpha) == Decimal("1014000.00")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.ledger_entry) == (
        "approved",
        manager,
        entry,
    )


def test_a_manager_rejects_and_the_balance_stays(client, clerk, manager, month):
    propose(as_user(client, clerk), month.alpha)
    proposal = AdjustmentRequest.objects.get()

    as_user(client, manager)
    response = decide(client, proposal, "reject_selected")

    assert "1 adjustment(s) rejected." in response.content.decode()
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == ("rejected", manager)
    assert not adjustment_entries(month.alpha).exists()
    assert ledger_balance(customer=month.alpha) == Decimal("14000.00")


def test_an_auditor_cannot_decide(client, clerk, auditor, month):
    propose(as_user(client, clerk), month.alpha)
    proposal = AdjustmentRequest.objects.get()
    as_user(client, auditor)
    for action in ("approve_selected", "reject_selected"):
        decide(client, proposal, action)
    proposal.refresh_from_db()
    assert proposal.status == "proposed"


def test_the_audit_page_shows_who_proposed_and_who_approved(client, clerk, manager, month):
    propose(as_user(client, clerk), month.alpha)
    proposal = AdjustmentRequest.objects.get()
    decide(as_user(client, manager), proposal, "approve_selected")

    page = client.get(reverse("admin:audit"), {"kind": "adjustment_request"})
    entries = [(e.username, e.detail) for e in page.context["entries"]]
    assert entries == [
        ("manager", "status: proposed → approved"),
        ("clerk", "proposed: Goodwill credit"),
    ]


def test_a_proposal_sent_twice_is_proposed_once(client, clerk, month):
    as_user(client, clerk)
    form = {"amount": "500.00", "reason": "Goodwill credit", "token": uuid.uuid4().hex}
    url = reverse("admin:accounts_customer_adjust", args=[month.alpha.pk])
    assert post_confirmed(client, url, form).status_code == 302
    assert post_confirmed(client, url, form).status_code == 302
    assert AdjustmentRequest.objects.count() == 1
    assert not adjustment_entries(month.alpha).exists()

"""Manual adjustments above BILLING_ADJUSTMENT_APPROVAL_ABOVE (default 0.00: every positive
one) wait for a finance manager: the clerk proposes, a manager approves (one ledger entry,
however often) or rejects (nothing), both recorded in the audit trail."""

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from accounts import roles
from accounts.models import AdjustmentRequest, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import (
    AdjustmentApprovalRequired,
    AdjustmentDecisionError,
    IdempotencyConflict,
    adjustment_approve,
    adjustment_reject,
    adjustment_submit,
    record_adjustment,
)
from invoices.admin.dashboard import audit_trail
from tests.conftest import postgres_only
from tests.factories import NOW, CustomerFactory, StaffFactory, deposit

pytestmark = pytest.mark.django_db

MILLION = Decimal("1000000.00")


@pytest.fixture
def customer():
    customer = CustomerFactory(name="Alpha Ltd")
    deposit(customer, "6000.00")
    return customer


@pytest.fixture
def clerk():
    return StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])


@pytest.fixture
def manager():
    return StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])


def propose(customer, user, amount=MILLION, key="adj-1"):
    submission = adjustment_submit(
        customer=customer,
        amount=amount,
        reason="Goodwill credit for the outage",
        idempotency_key=key,
        submitted_by=user,
        now=NOW,
    )
    return submission.entry, submission.request


def adjustments(customer) -> list[Decimal]:
    return [
        entry.amount.amount
        for entry in LedgerEntry.objects.filter(customer=customer, kind="adjustment")
    ]


def test_a_clerks_positive_adjustment_waits_until_a_manager_approves(customer, clerk, manager):
    entry, proposal = propose(customer, clerk)

    assert entry is None
    assert (proposal.status, proposal.proposed_by, proposal.amount.amount) == (
        "proposed",
        clerk,
        MILLION,
    )
    assert adjustments(customer) == []
    assert ledger_balance(customer=customer) == Decimal("6000.00")

    entry = adjustment_approve(request=proposal, approved_by=manager, now=NOW)

    assert (entry.amount.amount, entry.kind, entry.created_by) == (MILLION, "adjustment", manager)
    assert entry.reason == "Goodwill credit for the outage"
    assert ledger_balance(customer=customer) == Decimal("1006000.00")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.decided_at, proposal.ledger_entry) == (
        "approved",
        manager,
        NOW,
        entry,
    )


def test_approving_twice_posts_one_entry(customer, clerk, manager):
    _entry, proposal = propose(customer, clerk)
    first = adjustment_approve(request=proposal, approved_by=manager, now=NOW)
    again = adjustment_approve(request=proposal, approved_by=manager, now=NOW)
    other_manager = StaffFactory(username="manager2", groups=[roles.FINANCE_MANAGER])
    third = adjustment_approve(request=proposal, approved_by=other_manager, now=NOW)

    assert first == again == third
    assert adjustments(customer) == [MILLION]
    assert ledger_balance(customer=customer) == Decimal("1006000.00")


def test_a_rejected_proposal_never_reaches_the_ledger(customer, clerk, manager):
    _entry, proposal = propose(customer, clerk)

    adjustment_reject(request=proposal, rejected_by=manager, now=NOW)
    adjustment_reject(request=proposal, rejected_by=manager, now=NOW)  # again: no-op

    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, proposal.ledger_entry) == (
        "rejected",
        manager,
        None,
    )
    with pytest.raises(AdjustmentDecisionError):
        adjustment_approve(request=proposal, approved_by=manager, now=NOW)
    assert adjustments(customer) == []
    assert ledger_balance(customer=customer) == Decimal("6000.00")


def test_an_approved_adjustment_cannot_be_rejected(customer, clerk, manager):
    _entry, proposal = propose(customer, clerk)
    adjustment_approve(request=proposal, approved_by=manager, now=NOW)
    with pytest.raises(AdjustmentDecisionError):
        adjustment_reject(request=proposal, rejected_by=manager, now=NOW)
    proposal.refresh_from_db()
    assert proposal.status == "approved"


def test_the_clerk_cannot_approve_or_reject_his_own(customer, clerk):
    _entry, proposal = propose(customer, clerk)
    with pytest.raises(AdjustmentDecisionError):
        adjustment_approve(request=proposal, approved_by=clerk, now=NOW)
    with pytest.raises(AdjustmentDecisionError):
        adjustment_reject(request=proposal, rejected_by=clerk, now=NOW)

    # Nor once promoted: the proposer never approves his own proposal.
    clerk.groups.add(roles_group(roles.FINANCE_MANAGER))
    promoted = type(clerk).objects.get(pk=clerk.pk)  # fresh permission cache
    with pytest.raises(AdjustmentDecisionError, match="you proposed"):
        adjustment_approve(request=proposal, approved_by=promoted, now=NOW)
    proposal.refresh_from_db()
    assert proposal.status == "proposed"
    assert adjustments(customer) == []


def roles_group(name):

    return Group.objects.get(name=name)


def test_a_managers_own_adjustment_is_posted_and_recorded_as_approved(customer, manager):
    entry, proposal = propose(customer, manager, amount=Decimal("250.00"))

    assert entry is not None and entry.amount.amount == Decimal("250.00")
    assert (proposal.status, proposal.proposed_by, proposal.decided_by, proposal.ledger_entry) == (
        "approved",
        manager,
        manager,
        entry,
    )
    assert ledger_balance(customer=customer) == Decimal("6250.00")


def test_negative_adjustments_are_posted_at_once(customer, clerk):
    entry, proposal = propose(customer, clerk, amount=Decimal("-120.50"))
    assert proposal is None
    assert (entry.amount.amount, entry.created_by) == (Decimal("-120.50"), clerk)
    assert ledger_balance(customer=customer) == Decimal("5879.50")
    assert AdjustmentRequest.objects.count() == 0


def test_the_approval_limit_is_a_setting(customer, clerk, settings):
    settings.BILLING_ADJUSTMENT_APPROVAL_ABOVE = Decimal("500.00")

    at_limit, no_proposal = propose(customer, clerk, amount=Decimal("500.00"), key="a")
    above, proposal = propose(customer, clerk, amount=Decimal("500.01"), key="b")

    assert no_proposal is None and at_limit.amount.amount == Decimal("500.00")
    assert above is None and proposal.status == "proposed"
    assert adjustments(customer) == [Decimal("500.00")]


def test_a_double_submit_proposes_once(customer, clerk):
    first = adjustment_submit(
        customer=customer,
        amount=MILLION,
        reason="x",
        idempotency_key="k",
        submitted_by=clerk,
        now=NOW,
    )
    second = adjustment_submit(
        customer=customer,
        amount=MILLION,
        reason="x",
        idempotency_key="k",
        submitted_by=clerk,
        now=NOW,
    )
    assert (first.created, second.created) == (True, False)
    assert first.request.pk == second.request.pk and second.entry is None
    assert AdjustmentRequest.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        propose(customer, clerk, amount=Decimal("5.00"), key="k")


def test_a_direct_positive_adjustment_is_refused(customer):
    with pytest.raises(AdjustmentApprovalRequired):
        record_adjustment(
            customer=customer,
            amount=MILLION,
            reason="no approval",
            idempotency_key="direct",
            now=NOW,
        )
    assert adjustments(customer) == []


def test_the_audit_trail_names_the_proposer_and_the_approver(customer, clerk, manager):

    _entry, proposal = propose(customer, clerk)
    adjustment_approve(request=proposal, approved_by=manager, now=NOW)

    trail = audit_trail(kinds=["adjustment_request"])
    assert [(e.username, e.subject, e.detail) for e in trail] == [
        ("manager", "Alpha Ltd: ¥1,000,000.00 adjustment (changed)", "status: proposed → approved"),
        (
            "clerk",
            "Alpha Ltd: ¥1,000,000.00 adjustment (created)",
            "proposed: Goodwill credit for the outage",
        ),
    ]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_managers_approving_at_once_post_one_entry():

    # An earlier transactional test's flush empties auth_group; the roles come back idempotently.
    roles.sync_roles()
    customer = CustomerFactory(name="Alpha Ltd")
    clerk = StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])
    managers = [
        StaffFactory(username=f"manager{n}", groups=[roles.FINANCE_MANAGER]) for n in range(2)
    ]
    _entry, proposal = propose(customer, clerk)
    barrier = threading.Barrier(2)
    entries = []

    def approve(manager) -> None:
        try:
            barrier.wait(timeout=10)
            mine = AdjustmentRequest.objects.get(pk=proposal.pk)
            entries.append(adjustment_approve(request=mine, approved_by=manager, now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(manager,)) for manager in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(entries) == 2 and entries[0].pk == entries[1].pk
    assert adjustments(customer) == [MILLION]
    assert ledger_balance(customer=customer) == MILLION

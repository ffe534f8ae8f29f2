"""Disputes, refunds that fail later and bank debits, as Stripe's test cards and accounts play
them on the offline Stripe: what each does to a credit bundle, in any delivery order."""

from __future__ import annotations

import pytest
import stripe

from activities.models import ActivityType, LedgerEntry, LedgerKind
from billing.tests.harness import (
    SECRET_KEY,
    PlayedOnce,
    checkout,
    payment_intent_of,
    spend,
    subscribe_pro,
)
from stripe_emulator.api import REFUND_SETTLE_SECONDS
from stripe_emulator.checkout import ASYNC_SETTLE_SECONDS
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift

FRAUD = "4000000000000259"
NOT_RECEIVED = "4000000000002685"
INQUIRY = "4000000000001976"
REFUND_FAILS = "4000000000005126"


def start_checkout(api, harness) -> str:
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    assert response.status_code == 200, response.json()
    harness.deliver()
    return response.json()["sessionId"]


def purchased(user) -> int:
    account = CreditAccount.objects.get(user=user)
    assert ledger_drift(account=account) == {}
    return account.purchased_balance


def buy(api, harness, card="4242424242424242", order="sent"):
    session_id = checkout(api, harness, {"bundle": "credits_250"}, card=card)
    harness.deliver(order=order)
    return session_id


def dispute_of(session_id):
    [dispute] = stripe.Dispute.list(
        payment_intent=payment_intent_of(session_id), api_key=SECRET_KEY
    ).data
    return dispute


def submit(dispute, text):
    stripe.Dispute.modify(
        dispute.id, evidence={"uncategorized_text": text}, submit=True, api_key=SECRET_KEY
    )


def pro_through_the_api(owner, harness) -> None:
    from conftest import bearer_client

    subscribe_pro(bearer_client(owner), harness)


@pytest.mark.xdist_group("disputes_pro")
class TestOnPro(PlayedOnce):
    """Each test starts subscribed to pro: ``pro_through_the_api`` played once for the class."""

    life = staticmethod(pro_through_the_api)

    @pytest.fixture
    def pro(self, owner, stripe_harness):
        assert CreditAccount.objects.get(user=owner).tier == "pro"
        return stripe_harness

    def test_an_inquiry_takes_nothing(self, api, owner, pro):
        session_id = buy(api, pro, card=INQUIRY)
        assert dispute_of(session_id).status == "warning_needs_response"
        assert purchased(owner) == 250
        submit(dispute_of(session_id), "winning_evidence")
        pro.deliver()
        assert purchased(owner) == 250
        assert not LedgerEntry.objects.filter(user=owner, kind=LedgerKind.CLAWBACK).exists()

    def test_an_inquiry_that_escalates_takes_the_credits_back(self, api, owner, pro):
        session_id = buy(api, pro, card=INQUIRY)
        pro.emulator.resolve_dispute(dispute_of(session_id).id, "lost")
        pro.deliver()
        assert purchased(owner) == 0

    @pytest.mark.parametrize("order", ["sent", "reversed"])
    def test_a_chargeback_claws_back_and_a_won_dispute_gives_it_back(self, api, owner, pro, order):
        session_id = buy(api, pro, card=FRAUD, order=order)
        assert purchased(owner) == 0
        submit(dispute_of(session_id), "winning_evidence")
        pro.deliver(order=order, duplicate=True)
        assert purchased(owner) == 250
        kinds = list(
            LedgerEntry.objects.filter(user=owner, source__startswith="cs_")
            .order_by("id")
            .values_list("kind", "purchased_delta")
        )
        assert kinds == [
            (LedgerKind.PURCHASE, 250),
            (LedgerKind.CLAWBACK, -250),
            (LedgerKind.CLAWBACK_REVERSAL, 250),
        ]

    def test_a_lost_dispute_keeps_the_clawback(self, api, owner, pro):
        session_id = buy(api, pro, card=NOT_RECEIVED)
        submit(dispute_of(session_id), "losing_evidence")
        pro.deliver()
        assert purchased(owner) == 0
        assert LedgerEntry.objects.filter(user=owner, kind=LedgerKind.CLAWBACK).count() == 1

    def test_a_won_dispute_gives_back_only_what_was_taken(self, api, owner, pro):
        session_id = checkout(api, pro, {"bundle": "credits_250"})
        pro.deliver()
        spend(api, 600)  # 500 monthly + 100 purchased: 150 purchased left
        charge = stripe.PaymentIntent.retrieve(payment_intent_of(session_id), api_key=SECRET_KEY)
        dispute = pro.emulator.dispute_charge(charge.latest_charge, "fraudulent")
        pro.deliver()
        assert purchased(owner) == 0
        clawback = LedgerEntry.objects.get(user=owner, kind=LedgerKind.CLAWBACK)
        assert clawback.details == {"requested": 250, "taken": 150, "shortfall": 100}
        pro.emulator.resolve_dispute(dispute["id"], "won")
        pro.deliver(order="reversed")
        assert purchased(owner) == 150

    def test_a_refund_that_fails_later_restores_the_credits(self, api, owner, pro):
        session_id = buy(api, pro, card=REFUND_FAILS)
        stripe.Refund.create(payment_intent=payment_intent_of(session_id), api_key=SECRET_KEY)
        pro.deliver()
        assert purchased(owner) == 0
        pro.emulator.advance_clock(REFUND_SETTLE_SECONDS + 1)
        pro.deliver(duplicate=True, order="shuffled")
        assert purchased(owner) == 250
        assert (
            LedgerEntry.objects.filter(user=owner, kind=LedgerKind.CLAWBACK_REVERSAL).count() == 1
        )

    def test_a_bank_debit_grants_only_when_it_settles(self, api, owner, pro):
        session_id = start_checkout(api, pro)
        pro.emulator.complete_checkout(session_id, bank_account="000123456789")
        pro.deliver()
        assert purchased(owner) == 0
        pro.emulator.advance_clock(ASYNC_SETTLE_SECONDS)
        pro.deliver(duplicate=True)
        assert purchased(owner) == 250

    def test_a_returned_bank_debit_grants_nothing_and_says_so(self, api, owner, pro):
        session_id = start_checkout(api, pro)
        pro.emulator.complete_checkout(session_id, bank_account="000111111116")
        pro.emulator.advance_clock(ASYNC_SETTLE_SECONDS)
        pro.deliver(order="reversed")
        assert purchased(owner) == 0
        assert owner.activities.filter(activity_type=ActivityType.PAYMENT_FAILED).count() == 1

    def test_an_inquiry_on_an_earlier_purchase_takes_nothing(self, api, owner, pro):
        session_id = buy(api, pro)
        charge = stripe.PaymentIntent.retrieve(payment_intent_of(session_id), api_key=SECRET_KEY)
        pro.emulator.dispute_charge(charge.latest_charge, "general", inquiry=True)
        pro.deliver()
        assert purchased(owner) == 250

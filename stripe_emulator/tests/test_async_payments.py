"""Money that moves later: refunds whose outcome comes later, bank debits in Checkout."""

from __future__ import annotations

import pytest

from stripe_emulator.api import REFUND_SETTLE_SECONDS
from stripe_emulator.checkout import ASYNC_SETTLE_SECONDS
from stripe_emulator.errors import StripeError

from .tests_helpers import bundle_session


def paid_charge(client, emu, catalog, card):
    session = bundle_session(client, catalog)
    emu.complete_checkout(session.id, card=card)
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    return client.v1.charges.retrieve(session.payment_intent.latest_charge)


def test_a_card_refund_succeeds_at_once(client, emu, catalog, sink):
    charge = paid_charge(client, emu, catalog, "4242424242424242")
    refund = client.v1.refunds.create(params={"charge": charge.id})
    assert refund.status == "succeeded"
    emu.advance_clock(REFUND_SETTLE_SECONDS + 1)
    assert "refund.failed" not in sink.types and "charge.refund.updated" not in sink.types


def test_the_5126_card_refund_fails_later_and_is_returned_to_the_charge(client, emu, catalog, sink):
    charge = paid_charge(client, emu, catalog, "4000000000005126")
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 400})
    assert refund.status == "succeeded"
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 400
    emu.advance_clock(REFUND_SETTLE_SECONDS - 10)
    assert "refund.failed" not in sink.types
    emu.advance_clock(20)
    refund = client.v1.refunds.retrieve(refund.id)
    assert (refund.status, refund.failure_reason) == ("failed", "expired_or_canceled_card")
    assert refund.failure_balance_transaction.startswith("txn_")
    charge = client.v1.charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert sink.types[-3:] == ["charge.refund.updated", "refund.updated", "refund.failed"]
    assert sink.events[-3]["data"]["previous_attributes"]["status"] == "succeeded"


def test_the_7726_card_refund_is_pending_then_succeeds(client, emu, catalog, sink):
    charge = paid_charge(client, emu, catalog, "4000000000007726")
    refund = client.v1.refunds.create(params={"charge": charge.id})
    assert refund.status == "pending"
    emu.advance_clock(REFUND_SETTLE_SECONDS)
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert sink.types[-2:] == ["charge.refund.updated", "refund.updated"]


def test_a_bank_debit_completes_checkout_unpaid_then_succeeds(client, emu, catalog, sink):
    session = bundle_session(client, catalog)
    assert session.payment_method_types == ["card", "us_bank_account"]
    emu.complete_checkout(session.id, bank_account="000123456789")
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert (session.status, session.payment_status) == ("complete", "unpaid")
    assert session.payment_intent.status == "processing"
    assert client.v1.charges.retrieve(session.payment_intent.latest_charge).status == "pending"
    assert sink.types[-1] == "checkout.session.completed"
    emu.advance_clock(ASYNC_SETTLE_SECONDS)
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert session.payment_status == "paid" and session.payment_intent.status == "succeeded"
    assert sink.types[-3:] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.async_payment_succeeded",
    ]


def test_a_returned_bank_debit_fails_the_checkout(client, emu, catalog, sink):
    session = bundle_session(client, catalog)
    emu.complete_checkout(session.id, bank_account="000222222227")
    emu.advance_clock(ASYNC_SETTLE_SECONDS)
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert session.payment_status == "unpaid"
    assert session.payment_intent.status == "requires_payment_method"
    charge = client.v1.charges.retrieve(session.payment_intent.latest_charge)
    assert (charge.status, charge.failure_code) == ("failed", "insufficient_funds")
    assert sink.types[-1] == "checkout.session.async_payment_failed"
    assert "checkout.session.async_payment_succeeded" not in sink.types


def test_bank_debits_only_where_the_session_offers_them(client, emu, catalog, sink):
    cards_only = bundle_session(client, catalog, payment_method_types=["card"])
    with pytest.raises(StripeError):
        emu.complete_checkout(cards_only.id, bank_account="000123456789")

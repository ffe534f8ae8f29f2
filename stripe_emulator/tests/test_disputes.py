"""Disputes: Stripe's test cards, inquiries that move no money, evidence, won and lost."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.errors import StripeError


def pay_bundle(client, emu, catalog, card):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer_creation": "always",
            "line_items": [{"price": catalog["credits"].id, "quantity": 2}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu.complete_checkout(session.id, card=card)
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    return session.payment_intent.latest_charge


def disputes_of(client, charge_id):
    return client.v1.disputes.list(params={"charge": charge_id}).data


def test_fraudulent_card_is_disputed_and_its_funds_withdrawn(client, emu, catalog, sink):
    charge_id = pay_bundle(client, emu, catalog, "4000000000000259")
    [dispute] = disputes_of(client, charge_id)
    assert (dispute.status, dispute.reason, dispute.amount) == (
        "needs_response",
        "fraudulent",
        1000,
    )
    assert [t.amount for t in dispute.balance_transactions] == [-1000]
    assert dispute.balance_transactions[0].fee == 1500
    assert client.v1.charges.retrieve(charge_id).disputed is True
    types = sink.types
    created, withdrawn = (
        types.index("charge.dispute.created"),
        types.index("charge.dispute.funds_withdrawn"),
    )
    assert types.index("payment_intent.succeeded") < created < withdrawn


def test_product_not_received_card(client, emu, catalog, sink):
    [dispute] = disputes_of(client, pay_bundle(client, emu, catalog, "4000 0000 0000 2685"))
    assert dispute.reason == "product_not_received"


def test_an_inquiry_moves_no_money_and_closes_with_winning_evidence(client, emu, catalog, sink):
    [dispute] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000001976"))
    assert dispute.status == "warning_needs_response"
    assert dispute.balance_transactions == [] and dispute.is_charge_refundable is True
    assert "charge.dispute.funds_withdrawn" not in sink.types
    closed = client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    assert closed.status == "warning_closed"
    assert sink.types[-2:] == ["charge.dispute.updated", "charge.dispute.closed"]
    assert "charge.dispute.funds_withdrawn" not in sink.types


def test_a_losing_inquiry_escalates_to_a_chargeback(client, emu, catalog, sink):
    [dispute] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000001976"))
    emu.resolve_dispute(dispute.id, "lost")
    dispute = client.v1.disputes.retrieve(dispute.id)
    assert dispute.status == "needs_response"
    assert [t.amount for t in dispute.balance_transactions] == [-1000]
    assert sink.types[-2:] == ["charge.dispute.updated", "charge.dispute.funds_withdrawn"]


def test_winning_evidence_reinstates_the_funds(client, emu, catalog, sink):
    [dispute] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000000259"))
    won = client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}, "submit": True}
    )
    assert won.status == "won"
    assert [t.amount for t in won.balance_transactions] == [-1000, 1000]
    assert sink.types[-3:] == [
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    assert sink.of_type("charge.dispute.updated")[-1]["data"]["object"]["status"] == "under_review"


def test_losing_evidence_or_accepting_loses(client, emu, catalog, sink):
    [first] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000000259"))
    lost = client.v1.disputes.update(
        first.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    assert lost.status == "lost" and len(lost.balance_transactions) == 1
    [second] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000002685"))
    assert client.v1.disputes.close(second.id).status == "lost"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(second.id)
    assert "charge.dispute.funds_reinstated" not in sink.types


def test_evidence_without_submit_is_saved_only(client, emu, catalog, sink):
    [dispute] = disputes_of(client, pay_bundle(client, emu, catalog, "4000000000000259"))
    saved = client.v1.disputes.update(
        dispute.id, params={"evidence": {"customer_name": "K"}, "submit": False}
    )
    assert saved.status == "needs_response" and saved.evidence.customer_name == "K"
    assert saved.evidence_details.has_evidence and saved.evidence_details.submission_count == 0


def test_any_charge_can_be_disputed_through_the_admin_call(client, emu, catalog, sink):
    charge_id = pay_bundle(client, emu, catalog, "4242424242424242")
    assert disputes_of(client, charge_id) == []
    resp = emu.handle("POST", f"/_emulator/charges/{charge_id}/dispute", {}, b"reason=duplicate")
    dispute = resp.json()
    assert dispute["reason"] == "duplicate" and dispute["status"] == "needs_response"
    resp = emu.handle("POST", f"/_emulator/disputes/{dispute['id']}/resolve", {}, b"outcome=won")
    assert resp.json()["status"] == "won"
    with pytest.raises(StripeError):
        emu.dispute_charge(charge_id)

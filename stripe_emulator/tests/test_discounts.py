"""Coupons and promotion codes: Checkout totals, subscription invoices, redemptions."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.errors import StripeError

from .tests_helpers import bundle_session, subscribe

DAY = 86400


def coupon(client, **params):
    return client.v1.coupons.create(params=params)


def test_a_coupon_discounts_a_bundle_and_a_free_one_needs_no_payment(client, emu, catalog, sink):
    half = coupon(client, percent_off="50", duration="once")
    session = bundle_session(client, catalog, discounts=[{"coupon": half.id}])
    assert (session.amount_subtotal, session.amount_total) == (1000, 500)
    assert session.total_details.amount_discount == 500
    emu.complete_checkout(session.id)
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert session.payment_status == "paid" and session.payment_intent.amount == 500
    assert client.v1.coupons.retrieve(half.id).times_redeemed == 1

    free = coupon(client, percent_off="100", duration="once")
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": free.id}, "code": "FREEBIE"}
    )
    session = bundle_session(client, catalog, allow_promotion_codes=True)
    emu.complete_checkout(session.id, promotion_code="freebie")
    session = client.v1.checkout.sessions.retrieve(session.id)
    assert (session.amount_total, session.payment_status) == (0, "no_payment_required")
    assert session.payment_intent is None
    assert session.discounts[0].promotion_code == promo.id
    assert client.v1.promotion_codes.retrieve(promo.id).times_redeemed == 1


def test_a_repeating_coupon_discounts_a_subscriptions_invoices_while_it_lasts(
    client, emu, catalog, sink
):
    two_months = coupon(client, amount_off=1000, currency="usd", duration="repeating",
                        duration_in_months=2)  # fmt: skip
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, discounts=[{"coupon": two_months.id}]
    )
    [discount_id] = sub.discounts
    first = client.v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["discounts"]})
    assert (first.subtotal, first.total, first.amount_paid) == (3000, 2000, 2000)
    assert (
        first.discounts[0].id == discount_id and first.discounts[0].source.coupon == two_months.id
    )
    assert first.total_discount_amounts[0].amount == 1000
    totals = []
    for _ in range(3):
        emu.advance_clock(32 * DAY)
        sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
        totals.append(sub.latest_invoice.total)
    assert totals == [2000, 3000, 3000]  # the second month discounted, then full price


def test_discount_rules_are_enforced(client, emu, catalog):
    once = coupon(client, percent_off="10", max_redemptions=1)
    with pytest.raises(stripe.InvalidRequestError):
        bundle_session(client, catalog, discounts=[{"coupon": once.id}], allow_promotion_codes=True)
    with pytest.raises(stripe.InvalidRequestError):
        coupon(client, percent_off="10", amount_off=100, currency="usd")
    session = bundle_session(client, catalog, discounts=[{"coupon": once.id}])
    emu.complete_checkout(session.id)
    with pytest.raises(stripe.InvalidRequestError):
        bundle_session(client, catalog, discounts=[{"coupon": once.id}])  # used up
    plain = bundle_session(client, catalog)
    with pytest.raises(StripeError):
        emu.complete_checkout(plain.id, promotion_code="ANY")

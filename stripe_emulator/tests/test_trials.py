"""Trials through Checkout: trialing, a free first invoice, trial_will_end, the first charge."""

from __future__ import annotations

import pytest
import stripe

from .tests_helpers import START, subscribe

DAY = 86400


def test_a_trial_subscribes_now_and_charges_when_it_ends(client, emu, catalog, sink, clock):
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, subscription_data={"trial_period_days": 14}
    )
    assert sub.status == "trialing"
    assert (sub.trial_start, sub.trial_end) == (START, START + 14 * DAY)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (START, START + 14 * DAY)
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.billing_reason, first.amount_due, first.status) == (
        "subscription_create",
        0,
        "paid",
    )
    assert first.lines.data[0].description.startswith("Trial period for")
    assert "charge.succeeded" not in sink.types
    emu.advance_clock(11 * DAY)
    assert sink.types[-1] == "customer.subscription.trial_will_end"
    emu.advance_clock(3 * DAY + 3600)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active"
    assert sub.latest_invoice.billing_reason == "subscription_cycle"
    assert sub.latest_invoice.amount_paid == 3000
    assert sub["items"].data[0].current_period_start == START + 14 * DAY


def test_trial_parameters_are_checked(client, catalog):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": catalog["pro_monthly"].id}],
                "success_url": "http://127.0.0.1/ok",
                "subscription_data": {"trial_period_days": 0},
            }
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": catalog["pro_monthly"].id}],
                "success_url": "http://127.0.0.1/ok",
                "subscription_data": {"trial_end": START + 3600},
            }
        )

"""Subscription schedules, pending updates and portal configurations, as Stripe documents them."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import stripe

from .tests_helpers import subscribe

DAY = 86400


def post_form(emu, path, **fields):
    body = urlencode(fields).encode()
    return emu.handle("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body)


def price_of(client, sub_id):
    return client.v1.subscriptions.retrieve(sub_id)["items"].data[0].price.id


def invoices(client, customer):
    return client.v1.invoices.list(params={"customer": customer}).data


def test_a_schedule_switches_the_price_at_the_period_end_and_the_renewal_bills_it(
    client, emu, catalog, sink
):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert client.v1.subscriptions.retrieve(sub.id).schedule == schedule.id
    phase = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": catalog["pro_monthly"].id}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                },
                {
                    "items": [{"price": catalog["basic_monthly"].id}],
                    "duration": {"interval": "month", "interval_count": 1},
                },
            ],
        },
    )
    assert price_of(client, sub.id) == catalog["pro_monthly"].id  # nothing changes yet
    emu.advance_clock(32 * DAY)
    assert price_of(client, sub.id) == catalog["basic_monthly"].id
    renewal = invoices(client, session.customer)[0]
    assert (renewal.billing_reason, renewal.amount_paid) == ("subscription_cycle", 1000)
    emu.advance_clock(31 * DAY)  # the last phase ends: released, the price stays
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "released"
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    assert "subscription_schedule.released" in sink.types


def test_a_scheduled_subscription_refuses_direct_cancellation_changes(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError, match="managed by the subscription schedule"):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    client.v1.subscription_schedules.release(schedule.id)
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})


def test_a_pending_update_keeps_the_old_price_until_its_invoice_is_paid(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id, card="4000000000000341")
    item = sub["items"].data[0].id
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item, "price": catalog["pro_monthly"].id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    assert updated["items"].data[0].price.id == catalog["basic_monthly"].id
    assert updated.status == "active" and updated.pending_update is not None
    assert updated.pending_update.subscription_items[0].price.id == catalog["pro_monthly"].id
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.status == "open" and invoice.billing_reason == "subscription_update"
    # Paid later with a good card: the change applies.
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": session.customer})
    client.v1.invoices.pay(invoice.id, params={"payment_method": pm.id})
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after["items"].data[0].price.id == catalog["pro_monthly"].id
    assert after.pending_update is None
    assert "customer.subscription.pending_update_applied" in sink.types


def test_a_pending_update_expires_after_23_hours(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id, card="4000000000000341")
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": catalog["pro_monthly"].id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    emu.advance_clock(24 * 3600)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None and after.status == "active"
    assert after["items"].data[0].price.id == catalog["basic_monthly"].id
    assert "customer.subscription.pending_update_expired" in sink.types


def test_pending_updates_accept_only_price_and_proration_parameters(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    with pytest.raises(stripe.InvalidRequestError, match="cannot be passed"):
        client.v1.subscriptions.update(
            sub.id,
            params={"payment_behavior": "pending_if_incomplete", "cancel_at_period_end": False},
        )


@pytest.fixture
def configuration(client, catalog):
    return client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "proration_behavior": "always_invoice",
                    "products": [
                        {
                            "product": catalog["pro_monthly"].product,
                            "prices": [catalog["pro_monthly"].id, catalog["pro_yearly"].id],
                        },
                        {
                            "product": catalog["basic_monthly"].product,
                            "prices": [catalog["basic_monthly"].id],
                        },
                    ],
                    "schedule_at_period_end": {
                        "conditions": [
                            {"type": "decreasing_item_amount"},
                            {"type": "shortening_interval"},
                        ]
                    },
                }
            }
        }
    )


def test_the_portal_invoices_upgrades_now_and_schedules_downgrades(
    client, emu, catalog, configuration
):
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    bps = client.v1.billing_portal.sessions.create(
        params={"customer": session.customer, "configuration": configuration.id}
    )
    assert bps.configuration == configuration.id
    post_form(
        emu,
        f"/portal/{bps.id}",
        action="switch",
        subscription=sub.id,
        price=catalog["pro_monthly"].id,
    )
    assert price_of(client, sub.id) == catalog["pro_monthly"].id
    update = invoices(client, session.customer)[0]
    assert update.billing_reason == "subscription_update" and update.status == "paid"
    assert update.amount_paid > 1900  # the prorated difference, now
    post_form(
        emu,
        f"/portal/{bps.id}",
        action="switch",
        subscription=sub.id,
        price=catalog["basic_monthly"].id,
    )
    assert price_of(client, sub.id) == catalog["pro_monthly"].id  # until the period end
    assert client.v1.subscriptions.retrieve(sub.id).schedule is not None
    emu.advance_clock(32 * DAY)
    assert price_of(client, sub.id) == catalog["basic_monthly"].id


def test_the_portal_offers_only_the_configured_prices(client, emu, catalog, configuration):
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    client.v1.billing_portal.configurations.update(
        configuration.id,
        params={
            "features": {
                "subscription_update": {
                    "products": [
                        {
                            "product": catalog["basic_monthly"].product,
                            "prices": [catalog["basic_monthly"].id],
                        }
                    ]
                }
            }
        },
    )
    bps = client.v1.billing_portal.sessions.create(
        params={"customer": session.customer, "configuration": configuration.id}
    )
    resp = post_form(
        emu,
        f"/portal/{bps.id}",
        action="switch",
        subscription=sub.id,
        price=catalog["pro_monthly"].id,
    )
    assert "not%20offered" in resp.headers["Location"]
    assert price_of(client, sub.id) == catalog["basic_monthly"].id

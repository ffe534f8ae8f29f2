"""What each webhook costs at Stripe (issue 14): the event's object is read once, with what our
rules read expanded (billing/event_objects.py), and nothing else is asked.

Counted through the SDK's HTTP client, around each delivery to the public endpoint, over a
customer's life: subscribe through Checkout, buy a bundle, renew, a refund.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import stripe

from billing.tests.harness import (
    SECRET_KEY,
    buy_bundle,
    checkout,
    payment_intent_of,
    subscribe_pro,
    tier_info,
)
from subscriptions.models import CreditAccount

DAY = 86400
HOUR = 3600
# The events a waiting customer's credits and tier come from.
WAITED_ON = {
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "invoice.paid",
}


@pytest.fixture
def calls_per_delivery(stripe_harness, monkeypatch):
    """Stripe requests made while each delivery was processed: {event type: [count, ...]}."""
    counted: dict[str, list[int]] = defaultdict(list)
    client = stripe.default_http_client
    assert client is not None  # the offline Stripe's (the stripe_harness fixture)
    original_request = client.request
    requests = []

    def request(method, url, *args, **kwargs):
        requests.append((method, url))
        return original_request(method, url, *args, **kwargs)

    monkeypatch.setattr(client, "request", request)
    original_post = stripe_harness.post

    def post(delivery):
        before = len(requests)
        status = original_post(delivery)
        counted[delivery.event["type"]].append(len(requests) - before)
        return status

    monkeypatch.setattr(stripe_harness, "post", post)
    return counted


def test_each_event_of_a_customer_life_costs_one_stripe_call_at_most(
    api, owner, stripe_harness, calls_per_delivery
):
    subscribe_pro(api, stripe_harness)
    buy_bundle(api, stripe_harness)
    stripe_harness.emulator.advance_clock(31 * DAY + 2 * HOUR)  # renewed and paid
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "pro"
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250

    seen = dict(calls_per_delivery)
    assert set(seen) >= WAITED_ON, seen
    assert len(seen["invoice.paid"]) == 3  # the first, the bundle's receipt, the renewal
    over = {event_type: counts for event_type, counts in seen.items() if max(counts) > 1}
    assert not over, f"more than one Stripe call per event: {over} (all: {seen})"


def test_a_subscription_checkout_landing_first_stores_its_subscription_from_the_one_call(
    api, owner, stripe_harness, calls_per_delivery
):
    """Stripe does not order events: the Checkout can land before its subscription's. Its
    expanded subscription, items included, is stored from the Checkout's one read."""
    from djstripe.models import Subscription, SubscriptionItem

    checkout(api, stripe_harness, {"tier": "pro", "interval": "month"})
    first = [d for d in stripe_harness.queued if d.event["type"] == "checkout.session.completed"]
    assert first and not Subscription.objects.exists()
    assert stripe_harness.post(first[0]) == 200
    assert calls_per_delivery["checkout.session.completed"] == [1]
    subscription = Subscription.objects.get()
    assert SubscriptionItem.objects.filter(subscription=subscription).count() == 1
    stripe_harness.queued.remove(first[0])
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "pro"


def test_a_bundle_refunded_before_its_event_lands_is_asked_about_in_full(
    api, owner, stripe_harness, calls_per_delivery
):
    """The one-call path is only for a payment whose charge has no refund or dispute: a
    refund made before the purchase's event lands is read, and the credits clawed back."""
    subscribe_pro(api, stripe_harness)
    session_id = checkout(api, stripe_harness, {"bundle": "credits_250"})
    stripe.Refund.create(payment_intent=payment_intent_of(session_id), api_key=SECRET_KEY)
    stripe_harness.deliver(order="reversed")  # the refund's events first
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0
    assert max(calls_per_delivery["checkout.session.completed"]) > 1


def test_with_dj_stripes_own_handlers_the_same_life_ends_the_same(
    api, owner, stripe_harness, calls_per_delivery, settings
):
    """STRIPE_EVENT_OBJECTS_EXPANDED off (the fallback should a dj-stripe upgrade store nested
    objects differently): dj-stripe fetches what it has no row for, our rules ask Stripe for
    what was not read expanded, and the customer ends up where the one-call path puts them."""
    settings.STRIPE_EVENT_OBJECTS_EXPANDED = False
    subscribe_pro(api, stripe_harness)
    buy_bundle(api, stripe_harness)
    stripe_harness.emulator.advance_clock(31 * DAY + 2 * HOUR)
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.purchased_balance) == ("pro", 250)
    assert account.monthly_allowance == 500 and account.monthly_used == 0
    assert max(calls_per_delivery["invoice.paid"]) > 1  # the subscription read again


@pytest.fixture
def queries_per_delivery(stripe_harness, monkeypatch):
    """The SQL of each delivery to the endpoint: {event type: [[statement, ...], ...]}."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    captured: dict[str, list[list[str]]] = defaultdict(list)
    original_post = stripe_harness.post

    def post(delivery):
        with CaptureQueriesContext(connection) as queries:
            status = original_post(delivery)
        captured[delivery.event["type"]].append([q["sql"] for q in queries.captured_queries])
        return status

    monkeypatch.setattr(stripe_harness, "post", post)
    return captured


def test_a_delivery_looks_up_djstripes_owner_account_once(
    api, owner, stripe_harness, queries_per_delivery
):
    """dj-stripe finds the account owning each row it syncs from the API key, in the database,
    once per row (billing/owner_account.py): within one delivery it is looked up once."""
    subscribe_pro(api, stripe_harness)
    buy_bundle(api, stripe_harness)
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250
    lookups = {
        event_type: [sum('"djstripe_apikey"' in sql for sql in delivery) for delivery in deliveries]
        for event_type, deliveries in queries_per_delivery.items()
    }
    assert set(lookups) >= WAITED_ON - {"customer.subscription.updated"}, lookups
    # One for the secret key of the account dj-stripe's trigger names, one to find the account
    # a key belongs to; not one per synced row.
    over = {event_type: counts for event_type, counts in lookups.items() if max(counts) > 2}
    assert not over, f"the API-key table read more than twice in a delivery: {over}"


def test_a_delivery_writes_a_subscription_item_once(
    api, owner, stripe_harness, queries_per_delivery
):
    """dj-stripe 2.11 creates a new subscription item, then syncs it again with the same values;
    billing/event_objects.py stores each item once, and the rest of the life still works."""
    subscribe_pro(api, stripe_harness)
    stripe_harness.emulator.advance_clock(31 * DAY + 2 * HOUR)
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_used, account.monthly_allowance) == ("pro", 0, 500)
    writes = {
        event_type: [
            sum(
                sql.startswith(("INSERT", "UPDATE")) and '"djstripe_subscriptionitem"' in sql
                for sql in delivery
            )
            for delivery in deliveries
        ]
        for event_type, deliveries in queries_per_delivery.items()
    }
    assert max(writes["customer.subscription.created"]) == 1, writes  # stored, once
    over = {event_type: counts for event_type, counts in writes.items() if max(counts) > 1}
    assert not over, f"a subscription's one item written more than once in a delivery: {over}"


def test_marking_a_delivery_processed_does_not_rewrite_its_stored_body(
    api, owner, stripe_harness, queries_per_delivery
):
    from djstripe.models import WebhookEventTrigger

    subscribe_pro(api, stripe_harness)
    marks = [
        sql
        for deliveries in queries_per_delivery.values()
        for delivery in deliveries
        for sql in delivery
        if sql.startswith('UPDATE "djstripe_webhookeventtrigger"')
    ]
    assert marks and not any('"body"' in sql or '"headers"' in sql for sql in marks), marks
    triggers = WebhookEventTrigger.objects.filter(valid=True)
    assert triggers.exists() and not triggers.filter(processed=False).exists()
    assert not triggers.filter(event__isnull=True).exists()


def test_an_object_is_stored_with_the_values_dj_stripe_would_have_stored(
    api, owner, stripe_harness
):
    """billing/event_objects.py turns an SDK object into plain values without the SDK's
    indented ``str()``: the record, and the stored JSON with its key order, are what dj-stripe's
    ``json.loads(str(obj))`` gives, for expanded objects and for prices' decimal strings."""
    import json

    from djstripe import models as djstripe_models

    from billing.event_objects import EXPANSIONS, _record_from_plain_data

    subscribe_pro(api, stripe_harness)
    invoice_id = djstripe_models.Invoice.objects.get().id
    model, expand = EXPANSIONS["invoice"]
    invoice = stripe.Invoice.retrieve(invoice_id, expand=expand, api_key=SECRET_KEY)
    price_id = invoice.to_dict()["lines"]["data"][0]["pricing"]["price_details"]["price"]
    price = stripe.Price.retrieve(price_id, expand=["tiers"], api_key=SECRET_KEY)
    assert any(key.endswith("_decimal") for key in price.to_dict())  # a Decimal in the SDK
    for cls, obj in ((model, invoice), (djstripe_models.Price, price)):
        expected = _record_from_plain_data(cls, json.loads(str(obj)), api_key=SECRET_KEY)
        record = cls._stripe_object_to_record(obj, api_key=SECRET_KEY)
        assert record == expected
        assert json.dumps(record["stripe_data"]) == json.dumps(expected["stripe_data"])

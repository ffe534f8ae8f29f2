"""The offline Stripe wired into Django's test client, for flow tests.

The SDK (ours and dj-stripe's) talks to an in-process emulator; the emulator's webhooks are
queued and posted to ``/api/billing/webhook`` with their real signatures when the test calls
``deliver()``, the way Stripe delivers them: after the API call that caused them returned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import stripe
from django.contrib.auth.models import User
from django.test import Client

from stripe_emulator import Emulator
from stripe_emulator.client import EmulatorHTTPClient
from stripe_emulator.webhooks import Target
from subscriptions.models import CreditAccount

WEBHOOK_SECRET = "whsec_hrvstr_tests_0123456789"
SECRET_KEY = "sk_test_hrvstrTests0123456789abcdef"


def endpoint_subscribe(emulator: Emulator, target: str | Target) -> dict[str, Any]:
    """Our webhook endpoint at the offline Stripe, subscribed to the event types production
    registers (billing/webhook_events.py): Stripe sends an endpoint nothing else."""
    from billing.webhook_events import enabled_events

    return emulator.add_webhook_endpoint(
        target, secret=WEBHOOK_SECRET, events=list(enabled_events())
    )


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class StripeHarness:
    emulator: Emulator
    client: Client = field(default_factory=Client)
    queued: list[Delivery] = field(default_factory=list)
    delivered: list[Delivery] = field(default_factory=list)

    def __call__(self, body: bytes, headers: dict[str, str]) -> int:
        self.queued.append(Delivery(body, dict(headers)))
        return 200

    def post(self, delivery: Delivery) -> int:
        response = self.client.post(
            "/api/billing/webhook",
            data=delivery.body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=delivery.headers["Stripe-Signature"],
        )
        return response.status_code

    def deliver(self, *, order: str = "sent", duplicate: bool = False, seed: int = 0) -> list[int]:
        """Post what is queued (in order, reversed or shuffled; optionally twice each)."""
        batch, self.queued = self.queued, []
        if duplicate:
            batch = batch + batch
        if order == "reversed":
            batch.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(batch)
        statuses = [self.post(delivery) for delivery in batch]
        self.delivered.extend(batch)
        bad = [(d.event["type"], s) for d, s in zip(batch, statuses, strict=True) if s != 200]
        assert not bad, f"webhook deliveries failed: {bad}"
        return statuses

    def types(self) -> list[str]:
        return [delivery.event["type"] for delivery in self.queued]


def payment_intent_of(session_id: str) -> str:
    """The id of the PaymentIntent that paid a Checkout Session in payment mode."""
    intent = stripe.checkout.Session.retrieve(session_id, api_key=SECRET_KEY).payment_intent
    assert isinstance(intent, str), f"{session_id} has no payment intent"
    return intent


def stripe_customer_of(user: User) -> str:
    """The Stripe customer id of the user's account (one has been made)."""
    customer = CreditAccount.objects.get(user=user).stripe_customer_id
    assert customer, f"{user} has no Stripe customer"
    return customer


def checkout_and_pay(client, harness, body, card="4242424242424242"):
    """Start Checkout from a page, pay on the offline Stripe, deliver the webhooks."""
    response = client.post("/billing/checkout/", body)
    assert response.status_code == 303, response.content
    session_id = response["Location"].rsplit("/", 1)[-1]
    harness.deliver()
    harness.emulator.complete_checkout(session_id, card=card)
    harness.deliver()
    return session_id


def tier_info(api) -> dict:
    return api.get("/api/subscription/tier-info").json()["data"]


def checkout(api, harness, body, card="4242424242424242"):
    response = api.post("/api/billing/create-checkout-session", body, format="json")
    assert response.status_code == 200, response.json()
    session_id = response.json()["sessionId"]
    assert response.json()["url"].endswith(session_id)
    harness.deliver()
    harness.emulator.complete_checkout(session_id, card=card)
    return session_id


def subscribe_pro(api, harness, card="4242424242424242"):
    checkout(api, harness, {"tier": "pro", "interval": "month"}, card=card)
    harness.deliver()


def spend(api, quantity, action="ai_ticker_analysis"):
    response = api.post(
        "/api/credits/spend", {"action": action, "quantity": quantity}, format="json"
    )
    assert response.status_code == 200, response.json()


def buy_bundle(api, harness):
    session_id = checkout(api, harness, {"bundle": "credits_250"})
    harness.deliver()
    return session_id


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(event_type: str = "invoice.upcoming", livemode: bool = False, **obj) -> str:
    event = {
        "id": f"evt_test_{abs(hash((event_type, json.dumps(obj, sort_keys=True)))) % 10**10}",
        "object": "event",
        "api_version": "2026-08-26.dahlia",
        "created": int(time.time()),
        "data": {"object": {"object": "invoice", **obj}},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event)


def post(client, body: str, signature: str | None, path: str = "/api/billing/webhook"):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(path, data=body, content_type="application/json", **headers)


# --- the catalogue, made once per test process ---------------------------------------------
@dataclass(frozen=True)
class _CatalogueCopy:
    store: str  # the emulator's state as JSON, right after the catalogue was made
    rows: list[tuple[Any, list[dict[str, Any]]]]  # dj-stripe's mirror rows, by model


_CATALOGUE_COPIES: dict[str, _CatalogueCopy] = {}


def _catalogue_key(emulator: Emulator) -> str:
    """What the made catalogue depends on: a test that changes any of it gets its own."""
    from django.conf import settings

    from billing.catalogue_sync import portal_configuration_params
    from subscriptions import catalogue

    endpoints = [endpoint["id"] for endpoint in emulator.store.all("webhook_endpoint")]
    return repr(
        (
            endpoints,
            emulator.account_name,
            settings.STRIPE_TEST_SECRET_KEY,
            catalogue.price_entries(),
            portal_configuration_params({}),
        )
    )


def catalogue_ready(emulator: Emulator) -> None:
    """The catalogue at the offline Stripe and in dj-stripe's mirror, as ``catalogue_sync`` and
    ``portal_configuration_sync`` leave them (test_admin_commands tests those two). The first
    test in a process runs them (~50 ms); later tests get a copy of what they left (~2 ms).
    Ids come out the same either way: the emulator's ids follow its seed."""
    from django.apps import apps
    from django.db import transaction

    from billing.catalogue_sync import catalogue_sync, portal_configuration_sync

    key = _catalogue_key(emulator)
    made = _CATALOGUE_COPIES.get(key)
    if made is not None:
        emulator.store.load_json(json.loads(made.store))
        with transaction.atomic():  # the rows name each other: checked once all are in
            for model, rows in made.rows:
                model._default_manager.bulk_create([model(**values) for values in rows])
        return
    models = list(apps.get_app_config("djstripe").get_models())
    before = {model: set(model._default_manager.values_list("pk", flat=True)) for model in models}
    catalogue_sync()
    portal_configuration_sync()
    mirrored: list[tuple[Any, list[dict[str, Any]]]] = []
    for model in models:
        names = [f.attname for f in model._meta.concrete_fields]
        new = [
            values
            for values in model._default_manager.values(*names)
            if values[model._meta.pk.attname] not in before[model]
        ]
        if new:
            mirrored.append((model, new))
    _CATALOGUE_COPIES[key] = _CatalogueCopy(json.dumps(emulator.store.to_json()), mirrored)


@contextmanager
def offline_stripe(snapshot: str | None = None) -> Iterator[StripeHarness]:
    """A new offline Stripe behind the unmodified SDK, our endpoint subscribed, starting from
    ``snapshot`` (its store as JSON) or from the catalogue alone."""
    emulator = Emulator(delivery="sync")
    harness = StripeHarness(emulator=emulator)
    endpoint_subscribe(emulator, harness)
    previous = stripe.default_http_client
    stripe.default_http_client = EmulatorHTTPClient(emulator)
    try:
        if snapshot is None:
            catalogue_ready(emulator)
        else:
            # The endpoint made above has the snapshot's endpoint's id (ids follow the seed),
            # so deliveries still reach this harness.
            emulator.store.load_json(json.loads(snapshot))
        harness.queued.clear()
        yield harness
    finally:
        stripe.default_http_client = previous
        emulator.close()


def play_once(life: Callable[[User, StripeHarness], None]) -> str:
    """Play ``life`` for owner@example.com once, for a test class whose tests all start from it.

    Inside the class's transaction (conftest's ``class_db``): its rows stay for each test,
    whose own transaction rolls back to them. Returns the offline Stripe's state for the
    class's ``stripe_snapshot``, from which each test's ``stripe_harness`` starts. A life
    replayed per test (a Checkout and its webhooks) cost 0.2 to 0.3 s of every such test."""
    from django.test import override_settings

    from subscriptions.tests.factories import UserFactory

    keys = override_settings(
        STRIPE_TEST_SECRET_KEY=SECRET_KEY, STRIPE_TEST_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    with keys, offline_stripe() as harness:
        life(UserFactory.create(email="owner@example.com"), harness)
        return json.dumps(harness.emulator.store.to_json())


class PlayedOnce:
    """Base of a test class whose tests all start from ``life``, played once for the class
    (``play_once``): ``class TestPastDue(PlayedOnce): life = staticmethod(renewal_failed)``."""

    life: ClassVar[staticmethod[[User, StripeHarness], None]]

    @pytest.fixture(scope="class")
    @classmethod
    def stripe_snapshot(cls, class_db: None) -> str:
        return play_once(cls.life)

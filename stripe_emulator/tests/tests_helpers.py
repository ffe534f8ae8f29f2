"""Small helpers shared by the emulator's tests (constants, the fake clock, the verifying sink)."""

from __future__ import annotations

import json
from typing import Any

import stripe

from stripe_emulator import Emulator

START = 1_767_225_600  # 2026-01-01T00:00:00Z
SECRET = "whsec_test_secret"
KEY = "sk_test_emulator"


class FakeClock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sink:
    """A callable webhook target that checks signatures like a real receiver would."""

    def __init__(self, secret: str = SECRET, status: int = 200) -> None:
        self.secret = secret
        self.status = status
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, body: bytes, headers: dict[str, str]) -> int:
        event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], self.secret)
        self.events.append(json.loads(body))
        self.headers.append(headers)
        assert event.id == self.events[-1]["id"]
        return self.status

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


def subscribe(
    client: stripe.StripeClient,
    emu: Emulator,
    price_id: str,
    card: str = "4242424242424242",
    **params: Any,
) -> tuple[Any, Any]:
    """Create a subscription Checkout Session, complete it, return (session, subscription)."""
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": "http://127.0.0.1:8000/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:8000/cancel",
            **params,
        }
    )
    emu.complete_checkout(session.id, card=card)
    session = client.v1.checkout.sessions.retrieve(session.id)
    return session, client.v1.subscriptions.retrieve(session.subscription)


def bundle_session(client, catalog, **params: Any):
    """An open payment-mode Checkout Session for two credit packs (a new customer)."""
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer_creation": "always",
            "line_items": [{"price": catalog["credits"].id, "quantity": 2}],
            "success_url": "http://127.0.0.1/ok",
            **params,
        }
    )

"""Shared fixtures: an emulator on a fake clock, a stripe-python client bound to it in-process,
a catalog, and a webhook sink that verifies every signature with stripe-python."""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.client import EmulatorHTTPClient

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    emulator = Emulator(clock=clock)
    yield emulator
    emulator.close()


@pytest.fixture
def client(emu: Emulator) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, http_client=EmulatorHTTPClient(emu), max_network_retries=0)


@pytest.fixture
def sink(emu: Emulator) -> Sink:
    target = Sink()
    emu.add_webhook_endpoint(target, SECRET, ["*"])
    return target


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    prod = client.v1.products.create(params={"name": "HRVSTR Pro"})
    basic = client.v1.products.create(params={"name": "HRVSTR Basic"})
    credits = client.v1.products.create(params={"name": "Credit bundle"})
    return {
        "pro_monthly": client.v1.prices.create(
            params={
                "product": prod.id,
                "unit_amount": 3000,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "lookup_key": "pro_monthly",
            }
        ),
        "basic_monthly": client.v1.prices.create(
            params={
                "product": basic.id,
                "unit_amount": 1000,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "lookup_key": "basic_monthly",
            }
        ),
        "pro_yearly": client.v1.prices.create(
            params={
                "product": prod.id,
                "unit_amount": 30000,
                "currency": "usd",
                "recurring": {"interval": "year"},
                "lookup_key": "pro_yearly",
            }
        ),
        "credits": client.v1.prices.create(
            params={"product": credits.id, "unit_amount": 500, "currency": "usd"}
        ),
    }


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

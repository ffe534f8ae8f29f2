"""Shared fixtures: an emulator on a fake clock, a stripe-python client bound to it in-process,
a catalog, and a webhook sink that verifies every signature with stripe-python (the sink, the
clock and the helpers the tests import live in ``tests_helpers.py``)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.client import EmulatorHTTPClient

from .tests_helpers import KEY, SECRET, FakeClock, Sink


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

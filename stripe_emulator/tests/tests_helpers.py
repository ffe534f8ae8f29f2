"""Small helpers shared by the emulator's tests."""

from __future__ import annotations

from typing import Any


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

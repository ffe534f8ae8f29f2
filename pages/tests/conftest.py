from __future__ import annotations

import pytest
from django.test import Client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user, backend="hrvstr.auth.EmailBackend")
    return client


@pytest.fixture
def owner_client(owner) -> Client:
    return logged_in(owner)


@pytest.fixture
def other_client(other_user) -> Client:
    return logged_in(other_user)


@pytest.fixture
def staff_client(staff) -> Client:
    return logged_in(staff)


def checkout_and_pay(client, harness, body, card="4242424242424242"):
    """Start Checkout from a page, pay on the offline Stripe, deliver the webhooks."""
    response = client.post("/billing/checkout/", body)
    assert response.status_code == 303, response.content
    session_id = response["Location"].rsplit("/", 1)[-1]
    harness.deliver()
    harness.emulator.complete_checkout(session_id, card=card)
    harness.deliver()
    return session_id

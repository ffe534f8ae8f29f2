"""The fixed cast every test can use: ``owner``, ``other_user`` and ``staff``, plus API clients."""

from __future__ import annotations

import contextlib

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from subscriptions.tests.factories import UserFactory


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def owner(db):
    return UserFactory(email="owner@example.com")


@pytest.fixture
def other_user(db):
    return UserFactory(email="other@example.com")


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def api(owner) -> APIClient:
    """An API client logged in as ``owner`` with a JWT."""
    return bearer_client(owner)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters must not leak between tests."""
    from django.core.cache import cache

    yield
    # The cache table may be gone with a transactional test's database.
    with contextlib.suppress(Exception):
        cache.clear()


@pytest.fixture
def stripe_harness(settings, db):
    """The offline Stripe behind the unmodified SDK, with webhooks posted to our endpoint."""
    import stripe

    from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, StripeHarness
    from stripe_emulator import Emulator
    from stripe_emulator.client import EmulatorHTTPClient

    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    emulator = Emulator(delivery="sync")
    harness = StripeHarness(emulator=emulator)
    emulator.add_webhook_endpoint(harness, secret=WEBHOOK_SECRET)
    previous = stripe.default_http_client
    stripe.default_http_client = EmulatorHTTPClient(emulator)
    try:
        from billing.catalogue_sync import catalogue_sync

        catalogue_sync()
        harness.queued.clear()
        yield harness
    finally:
        stripe.default_http_client = previous
        emulator.close()

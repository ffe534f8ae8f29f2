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

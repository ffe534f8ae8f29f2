"""The fixed cast every test can use: ``owner``, ``other_user``, ``staff`` and the support
group's ``support_agent``, plus API clients (JWT) and page clients (a logged-in session)."""

from __future__ import annotations

import contextlib
import gc
import importlib

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from subscriptions.tests.factories import UserFactory
from subscriptions.tokens import tokens_issue


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fewer garbage collections in a test process.

    What is loaded by now (Django, the SDK, every test module) lives as long as the process:
    frozen, the collector no longer walks it. Tests allocate in bursts of short-lived objects
    (the SDK builds one per field of every Stripe answer), which at the default threshold of
    700 meant hundreds of young-generation collections a minute for little garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access}")
    return client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user, backend="hrvstr.auth.EmailBackend")
    return client


@pytest.fixture
def owner(db):
    return UserFactory.create(email="owner@example.com")


@pytest.fixture
def other_user(db):
    return UserFactory.create(email="other@example.com")


@pytest.fixture
def staff(db):
    return UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)


def support_group() -> Group:
    """The group its data migration made. A transactional test's flush empties every table and
    only post_migrate data (content types, permissions) comes back, so with tests spread over
    xdist workers the group may be gone: the migration's own function makes it again."""
    group = Group.objects.filter(name="support").first()
    if group is None:
        from django.apps import apps

        importlib.import_module("subscriptions.migrations.0003_support_group").create_group(
            apps, None
        )
        group = Group.objects.get(name="support")
    return group


@pytest.fixture
def support_agent(db):
    """A staff member in the "support" group only (not a superuser)."""
    user = UserFactory.create(email="agent@example.com", is_staff=True)
    user.groups.add(support_group())
    return user


@pytest.fixture
def owner_client(owner) -> Client:
    return logged_in(owner)


@pytest.fixture
def other_client(other_user) -> Client:
    return logged_in(other_user)


@pytest.fixture
def staff_client(staff) -> Client:
    return logged_in(staff)


@pytest.fixture
def agent_client(support_agent) -> Client:
    return logged_in(support_agent)


@pytest.fixture
def admin_client(staff) -> Client:
    """pytest-django's ``admin_client``, as our ``staff`` superuser."""
    return logged_in(staff)


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


@pytest.fixture(autouse=True)
def _fresh_webhook_endpoint():
    """Each process caches the webhook endpoint row and dj-stripe's owner account; a test's
    rows go with its database."""
    from billing.endpoint import webhook_endpoint_forget
    from billing.owner_account import shared_forget

    webhook_endpoint_forget()
    shared_forget()
    yield
    webhook_endpoint_forget()
    shared_forget()


@pytest.fixture
def rate_limits_on(settings):
    """Rate limits enabled, with the clock stopped.

    django-ratelimit counts in fixed windows; a test whose requests straddle a window's end
    would see the count start again and no 429 (seen in CI on PostgreSQL). A stopped clock
    keeps every request in one window; forked worker processes inherit it.
    """
    import time_machine
    from django.utils import timezone

    settings.RATELIMIT_ENABLE = True
    with time_machine.travel(timezone.now(), tick=False):
        yield settings


@pytest.fixture
def stripe_snapshot() -> str | None:
    """The offline Stripe's state each test starts from: None is the catalogue alone. A test
    class whose tests share a customer life played once overrides it (harness.play_once)."""
    return None


@pytest.fixture(scope="class")
def class_db(django_db_setup, django_db_blocker):
    """One transaction around a test class: what the class makes once stays for each of its
    tests (their own transactions roll back to it), and goes after the last one."""
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture
def stripe_harness(settings, db, stripe_snapshot):
    """The offline Stripe behind the unmodified SDK, with webhooks posted to our endpoint."""
    from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, offline_stripe

    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    with offline_stripe(stripe_snapshot) as harness:
        yield harness

"""Rate limits: shared by every worker process, 429 with Retry-After, keyed on an address the
client cannot choose (X-Forwarded-For counts only behind a trusted proxy)."""

from __future__ import annotations

import socket
import uuid

import pytest
from django.db import connection
from django.test import Client

LOGIN = "/api/auth/token"
LIMIT = 10  # AUTH_RATE, per address per minute


def attempt(client: Client, **headers) -> int:
    response = client.post(
        LOGIN,
        {"email": "x@example.com", "password": "wrong"},
        content_type="application/json",
        **headers,
    )
    if response.status_code == 429:
        assert int(response["Retry-After"]) > 0
        assert response.json()["code"] == "rate_limited"
    return response.status_code


def test_a_new_x_forwarded_for_each_time_does_not_dodge_the_limit(db, rate_limits_on):
    rate_limits_on.TRUSTED_PROXY_COUNT = 0
    client = Client(REMOTE_ADDR="203.0.113.5")
    statuses = [attempt(client, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}") for i in range(LIMIT + 3)]
    assert statuses[:LIMIT] == [401] * LIMIT and statuses[LIMIT:] == [429] * 3


def test_behind_a_trusted_proxy_only_the_address_it_saw_counts(db, rate_limits_on):
    rate_limits_on.TRUSTED_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR="10.0.0.1")  # the proxy
    # The client prepends made-up addresses; the proxy appends the one it saw.
    statuses = [
        attempt(client, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7") for i in range(LIMIT + 2)
    ]
    assert statuses[LIMIT:] == [429, 429]
    # Another real client behind the same proxy has its own allowance.
    assert attempt(client, HTTP_X_FORWARDED_FOR="203.0.113.8") == 401


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


CACHES = {
    "database": None,  # the project's default: hrvstr.cache.AtomicDatabaseCache
    "redis": {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"hrvstr-test-{uuid.uuid4().hex[:8]}",
        }
    },
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="processes need a shared database")
@pytest.mark.parametrize("backend", CACHES)
def test_the_limit_holds_across_worker_processes(rate_limits_on, backend):
    from hrvstr.tests.concurrency import run_in_processes

    if backend == "redis":
        if not redis_available():
            pytest.skip("no Redis on 127.0.0.1:6379")
        rate_limits_on.CACHES = CACHES["redis"]
    processes, per_process = 6, 4

    def hammer(index: int) -> list[int]:
        client = Client(REMOTE_ADDR="198.51.100.23")
        return [attempt(client) for _ in range(per_process)]

    statuses = [s for batch in run_in_processes(processes, hammer) for s in batch]
    assert len(statuses) == processes * per_process, statuses
    assert statuses.count(401) == LIMIT, statuses
    assert statuses.count(429) == processes * per_process - LIMIT


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="processes need a shared database")
def test_the_admin_login_limit_holds_across_worker_processes(rate_limits_on):
    from hrvstr.tests.concurrency import run_in_processes

    processes, per_process = 4, 4

    def hammer(index: int) -> list[int]:
        client = Client(REMOTE_ADDR="198.51.100.24")
        return [
            client.post(
                "/admin/login/", {"username": "x@example.com", "password": "no"}
            ).status_code
            for _ in range(per_process)
        ]

    statuses = [s for batch in run_in_processes(processes, hammer) for s in batch]
    assert statuses.count(429) == processes * per_process - LIMIT, statuses

"""The client address rate limits are keyed on."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from hrvstr.http import UNKNOWN_ADDRESS, client_ip


def request(remote_addr="203.0.113.9", forwarded=None):
    extra = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_it_ignores_x_forwarded_for_without_a_trusted_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request(forwarded="1.2.3.4")) == "203.0.113.9"


def test_it_takes_the_address_the_trusted_proxy_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request(forwarded="6.6.6.6, 198.51.100.7")) == "198.51.100.7"


@pytest.mark.parametrize("remote_addr", ["", "unknown", "not-an-ip"])
def test_without_a_usable_address_it_is_one_shared_valid_address(settings, remote_addr):
    """A unix-socket server leaves REMOTE_ADDR empty; django-ratelimit crashed on 'unknown'."""
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request(remote_addr=remote_addr)) == UNKNOWN_ADDRESS


def test_a_garbage_forwarded_entry_falls_back_to_the_peer(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request(forwarded="<script>")) == "203.0.113.9"


def test_an_anonymous_endpoint_without_remote_addr_is_not_a_500(client, db):
    response = client.post(
        "/api/auth/token",
        {"email": "a@example.com", "password": "x"},
        content_type="application/json",
        REMOTE_ADDR="",
    )
    assert response.status_code in {400, 401}


def test_an_unreachable_database_is_503_with_retry_after_not_500(api, owner, monkeypatch):
    """Found by the soak while PostgreSQL restarted: every API call answered 500."""
    from django.db import OperationalError

    from subscriptions import services

    def down(**kwargs):
        raise OperationalError("connection failed: the database system is shutting down")

    monkeypatch.setattr(services, "account_get", down)
    response = api.get("/api/credits/balance")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"


def test_a_webhook_while_the_database_is_unreachable_is_503(client, db, monkeypatch):
    from django.db import OperationalError

    from billing import endpoint

    def down():
        raise OperationalError("connection failed: Connection refused")

    monkeypatch.setattr(endpoint, "webhook_endpoint_ensure", down)
    response = client.post(
        "/api/billing/webhook",
        data="{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"

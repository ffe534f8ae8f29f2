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

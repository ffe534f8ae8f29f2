"""Messages made on first use (hrvstr/messages.py): pages still show them exactly once, and a
request that never touched them (the JSON API) leaves a pending one where it was."""

from __future__ import annotations

from django.utils.functional import empty

NOTHING_TO_PAY = "There is nothing to pay right now."


def test_a_message_waits_through_api_calls_and_is_shown_once(owner_client):
    response = owner_client.get("/billing/pay-now/")
    assert response.status_code == 302 and response["Location"] == "/billing/"
    assert "messages" in response.cookies

    api = owner_client.get("/api/subscription/tier-info")
    assert api.status_code == 200 and api.json()["success"] is True
    assert "messages" not in api.cookies  # neither rewritten nor deleted
    assert api.wsgi_request._messages._wrapped is empty  # no storage was even made

    assert NOTHING_TO_PAY in owner_client.get("/billing/").content.decode()
    assert NOTHING_TO_PAY not in owner_client.get("/billing/").content.decode()


def test_a_page_that_shows_no_message_keeps_none(owner_client):
    response = owner_client.get("/billing/")
    assert response.status_code == 200 and "messages" not in response.cookies

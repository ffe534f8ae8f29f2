"""Stripe's errors become domain errors in one place."""

from __future__ import annotations

import pytest
import stripe

from billing import gateway
from billing.tests.harness import SECRET_KEY


def raising(exc):
    def call(*args, **kwargs):
        raise exc

    return call


@pytest.fixture
def keyed(settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_hrvstrTests0123456789abcdef"


@pytest.mark.parametrize(
    "error, expected, status",
    [
        (stripe.CardError("declined", "card", "card_declined"), gateway.CardDeclined, 402),
        (stripe.APIConnectionError("down"), gateway.StripeUnavailable, 503),
        (stripe.RateLimitError("slow down"), gateway.StripeUnavailable, 503),
        (stripe.APIError("boom", http_status=500), gateway.StripeUnavailable, 503),
        (
            stripe.InvalidRequestError("No such customer", "id", http_status=404),
            gateway.StripeRequestFailed,
            502,
        ),
    ],
)
def test_stripe_errors_map_to_domain_errors(keyed, monkeypatch, error, expected, status):
    monkeypatch.setattr(stripe.Customer, "retrieve", raising(error))
    with pytest.raises(expected) as excinfo:
        gateway.customer_retrieve("cus_1")
    assert excinfo.value.status == status


def test_without_a_key_nothing_is_sent(settings, monkeypatch):
    settings.STRIPE_TEST_SECRET_KEY = ""
    monkeypatch.setattr(stripe.Customer, "retrieve", raising(AssertionError("sent")))
    with pytest.raises(gateway.StripeNotConfigured):
        gateway.customer_retrieve("cus_1")


def test_live_mode_uses_only_the_live_key(settings):
    settings.STRIPE_LIVE_MODE = True
    settings.STRIPE_LIVE_SECRET_KEY = "sk_live_abc"
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_abc"
    assert gateway.secret_key() == "sk_live_abc"


def test_stripe_being_down_is_a_clear_503_for_the_spa(api, keyed, monkeypatch):
    monkeypatch.setattr(stripe.Customer, "create", raising(stripe.APIConnectionError("down")))
    monkeypatch.setattr("billing.services.price_id_for", lambda lookup_key: "price_1")
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_unavailable"


def test_a_plain_read_holds_what_the_sdks_object_holds(stripe_harness):
    """``object_read`` (an event's object, for dj-stripe) gives the same values as the SDK's
    retrieve, as JSON dicts."""
    customer = gateway.customer_create(
        email="plain@example.com", name="Plain", metadata={"k": "v"}, idempotency_key="plain-1"
    )
    expand = ["invoice_settings.default_payment_method"]
    plain = gateway.object_read(stripe.Customer, customer.id, expand=expand)
    sdk = stripe.Customer.retrieve(customer.id, expand=expand, api_key=SECRET_KEY)
    assert type(plain) is dict and plain == sdk.to_dict()


def test_a_list_with_more_pages_is_paged_through_by_the_sdk(stripe_harness):
    """A list object iterates and sizes as its embedded page, and pages on through the SDK."""
    ids = [
        gateway.customer_create(
            email=f"page{n}@example.com", name="", metadata={}, idempotency_key=f"page-{n}"
        ).id
        for n in range(3)
    ]
    newest_first = list(reversed(ids))
    first = gateway.object_read(stripe.Customer, newest_first[0], expand=[])
    page = gateway.StripeList(
        {"object": "list", "url": "/v1/customers", "has_more": True, "data": [first]}
    )
    page.api_key = SECRET_KEY
    assert len(page) == 1 and [c["id"] for c in page] == [first["id"]]
    assert [c["id"] for c in page.auto_paging_iter()] == newest_first
    page["has_more"] = False
    assert [c["id"] for c in page.auto_paging_iter()] == [first["id"]]
    assert not gateway.StripeList({"object": "list", "data": [], "has_more": False})

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.gateway import StripeUnavailable
from billing.tests.harness import PlayedOnce
from subscriptions.models import CreditAccount
from subscriptions.services import component_unlock, credits_adjust

pytestmark = pytest.mark.django_db


def make_pro(user, **fields):
    now = timezone.now()
    values = dict(
        tier="pro",
        monthly_allowance=500,
        subscription_status="active",
        stripe_subscription_id="sub_123",
        stripe_customer_id=f"cus_{user.pk}",
        billing_interval="month",
        billing_period_end=now + timedelta(days=20),
        period_end=now + timedelta(days=20),
    )
    values.update(fields)
    CreditAccount.objects.filter(user=user).update(**values)


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/billing/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/billing/"


def test_a_free_account_shows_its_credits_and_no_bundle(owner_client):
    html = owner_client.get("/billing/").content.decode()
    assert "Free plan" in html
    assert "<strong>50</strong> left" in html  # the free allowance
    assert "Credit bundles come with paid plans" in html
    assert "Manage billing" not in html  # no Stripe customer yet
    assert "No invoices yet." in html


def test_a_pro_account_shows_the_meter_reset_and_the_bundle(owner, owner_client):
    make_pro(owner, monthly_used=120)
    credits_adjust(user=owner, amount=30, reason="goodwill", staff_user=None, idempotency_key="k1")
    html = owner_client.get("/billing/").content.decode()
    assert "Pro plan" in html
    assert "<strong>410</strong> left" in html
    assert '<meter id="usage-meter" min="0" max="500" value="120"' in html
    assert "Monthly credits used: 120 of 500" in html
    assert "+ 30 purchased" in html
    assert "in 20 days" in html
    assert "Buy 250 credits for $10" in html
    assert "Manage billing" in html
    assert "Cancel at period end" in html


def test_past_due_shows_the_grace_deadline(owner, owner_client):
    deadline = timezone.now() + timedelta(days=5)
    make_pro(owner, subscription_status="past_due", grace_until=deadline)
    html = owner_client.get("/billing/").content.decode()
    assert "Past due." in html
    assert f"{deadline:%-d %b %Y}" in html


def test_a_cancelled_subscription_shows_its_end_and_resume(owner, owner_client):
    make_pro(owner, cancel_at_period_end=True)
    html = owner_client.get("/billing/").content.decode()
    assert "Cancels on" in html
    assert "Resume subscription" in html
    assert "Cancel at period end" not in html


def test_active_unlocks_show_their_time_left(owner, owner_client):
    make_pro(owner)
    component_unlock(user=owner, component="reddit")
    html = owner_client.get("/billing/").content.decode()
    assert "Reddit sentiment</strong>: 1 h 59 min left" in html


def test_invoices_are_listed(owner, owner_client, monkeypatch):
    from billing import selectors

    monkeypatch.setattr(
        selectors,
        "invoices_recent",
        lambda *, user, limit: [
            {
                "id": "in_1",
                "amount": 1900,
                "currency": "usd",
                "status": "paid",
                "date": "2026-11-01T10:00:00Z",
                "description": "HRVSTR Pro",
                "downloadUrl": "https://invoice.example/in_1",
            }
        ],
    )
    html = owner_client.get("/billing/").content.decode()
    assert "HRVSTR Pro" in html and "$19" in html and "1 Nov 2026" in html
    assert 'href="https://invoice.example/in_1"' in html


def test_stripe_down_still_shows_the_page_and_says_what_is_missing(owner_client, monkeypatch):
    from billing import selectors

    def unreachable(**kwargs):
        raise StripeUnavailable()

    monkeypatch.setattr(selectors, "invoices_recent", unreachable)
    response = owner_client.get("/billing/")
    assert response.status_code == 200
    assert "Invoices cannot be shown right now" in response.content.decode()


def test_each_member_sees_only_their_own_account(owner, owner_client, other_client):
    make_pro(owner)
    assert "Pro plan" in owner_client.get("/billing/").content.decode()
    assert "Free plan" in other_client.get("/billing/").content.decode()


def test_staff_see_their_own_billing_page(staff_client):
    assert staff_client.get("/billing/").status_code == 200


def test_a_lock_timeout_is_a_busy_page_not_a_crash(owner_client, monkeypatch):
    from django.db import OperationalError

    from billing import selectors

    def locked(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(selectors, "billing_overview", locked)
    response = owner_client.get("/billing/")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "busy" in response.content.decode()


def test_other_database_errors_are_not_hidden(owner_client, monkeypatch):
    from django.db import OperationalError

    from billing import selectors

    def broken(**kwargs):
        raise OperationalError("no such table")

    monkeypatch.setattr(selectors, "billing_overview", broken)
    with pytest.raises(OperationalError):
        owner_client.get("/billing/")


def test_a_free_account_can_upgrade_from_the_billing_page(owner_client):
    html = owner_client.get("/billing/").content.decode()
    assert 'action="/billing/checkout/"' in html
    assert "Upgrade to Pro" in html and "Upgrade to Institutional" in html


def test_a_subscriber_switches_plan_from_the_billing_page(owner, owner_client):
    make_pro(owner)
    html = owner_client.get("/billing/").content.decode()
    assert 'action="/billing/change-plan/"' in html
    assert "Upgrade to Elite" in html and "Upgrade to Pro" not in html
    make_pro(owner, tier="elite", billing_interval="year")
    html = owner_client.get("/billing/").content.decode()
    assert "Downgrade to Pro" in html and "$190 / year" in html


# --- against the offline Stripe: the card, receipts, invoice lines, billing details ---------

DAY = 86400
HOUR = 3600


def subscribe(client, harness, tier="pro", card="4242424242424242"):
    from billing.tests.harness import checkout_and_pay

    return checkout_and_pay(client, harness, {"tier": tier, "interval": "month"}, card=card)


def stripe_customer(owner):
    import stripe

    from billing.tests.harness import SECRET_KEY, stripe_customer_of

    return stripe.Customer.retrieve(
        stripe_customer_of(owner), expand=["tax_ids"], api_key=SECRET_KEY
    )


def test_the_card_on_file_shows_brand_last_4_and_expiry(owner, owner_client, stripe_harness):
    subscribe(owner_client, stripe_harness, card="5555555555554444")
    html = owner_client.get("/billing/").content.decode()
    assert '<p id="card-on-file"><strong>Mastercard</strong> ending in 4444,' in html
    assert "expires 12/2034" in html
    assert "Update card" in html


def test_no_card_before_the_first_plan(owner_client):
    html = owner_client.get("/billing/").content.decode()
    assert "No card on file yet" in html and 'id="billing-details"' not in html


def test_a_failed_renewal_says_when_stripe_retries(owner, owner_client, stripe_harness):
    subscribe(owner_client, stripe_harness, card="4000000000000341")
    stripe_harness.emulator.advance_clock(31 * DAY + HOUR)
    stripe_harness.deliver()
    renewal = owner_client.get("/billing/").context["invoices"][0]
    assert renewal["status"] == "open"
    assert renewal["statusText"].startswith("Open — payment failed, Stripe retries on ")
    html = owner_client.get("/billing/").content.decode()
    assert renewal["statusText"] in html
    assert f'<a href="{renewal["hostedUrl"]}" rel="noopener">Pay<' in html


def test_billing_details_need_a_billing_account(owner_client):
    response = owner_client.post("/billing/details/", {"email": "a@example.com"})
    assert response.status_code == 400 and "No billing account yet" in response.content.decode()


def test_billing_details_need_the_csrf_token_and_are_rate_limited(owner, monkeypatch):
    from django.test import Client

    from billing import customer_details

    calls = []

    def update(**kwargs):
        calls.append(kwargs)
        return ["billing e-mail"]

    monkeypatch.setattr(customer_details, "billing_details_update", update)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner, backend="hrvstr.auth.EmailBackend")
    assert strict.post("/billing/details/", {"email": "a@example.com"}).status_code == 403
    client = Client()
    client.force_login(owner, backend="hrvstr.auth.EmailBackend")
    statuses = [
        client.post("/billing/details/", {"email": "a@example.com"}).status_code for _ in range(21)
    ]
    assert statuses[:20] == [302] * 20 and statuses[20] == 429
    assert len(calls) == 20


def pro_from_the_pricing_page(owner, harness) -> None:
    from conftest import logged_in

    subscribe(logged_in(owner), harness)


@pytest.mark.xdist_group("billing_page_on_pro")
class TestOnPro(PlayedOnce):
    """Each test starts subscribed to pro: ``pro_from_the_pricing_page`` played once for the
    class."""

    life = staticmethod(pro_from_the_pricing_page)

    def test_a_bundle_has_a_receipt_with_number_and_pdf_next_to_the_plans_invoice(
        self, owner, owner_client, api, stripe_harness
    ):
        from billing.tests.harness import checkout_and_pay

        checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
        response = owner_client.get("/billing/")
        receipt, plan = response.context["invoices"]
        assert receipt["isReceipt"] and not plan["isReceipt"]
        assert receipt["number"] and receipt["status"] == "paid" and receipt["amount"] == 1000
        assert [line.description for line in receipt["lines"]] == ["250 credits (credit bundle)"]
        html = response.content.decode()
        assert f'<strong>{receipt["number"]}</strong> <span class="muted">(receipt)</span>' in html
        assert f'<a href="{receipt["pdfUrl"]}" rel="noopener">PDF' in html
        assert receipt["pdfUrl"].endswith(f"/invoices/{receipt['id']}/pdf")
        assert "Paid on " in html
        # The SPA's list has it too, in the shape it reads.
        [spa_receipt, _] = api.get("/api/billing/invoices").json()["data"]
        assert spa_receipt["id"] == receipt["id"]
        assert spa_receipt["description"] == "250 credits (credit bundle)"
        assert spa_receipt["downloadUrl"] == receipt["hostedUrl"]
        # Paid once: the bundle's credits came with the Checkout, the receipt adds none.
        from subscriptions.models import CreditAccount

        assert CreditAccount.objects.get(user=owner).purchased_balance == 250

    def test_invoice_lines_name_the_plan_and_its_period(self, owner, owner_client, stripe_harness):
        [invoice] = owner_client.get("/billing/").context["invoices"]
        [line] = invoice["lines"]
        assert line.description == "Pro plan, monthly" and line.amount == 1900
        assert line.period_start and line.period_end and not line.proration
        html = owner_client.get("/billing/").content.decode()
        assert "Pro plan, monthly" in html and "HRVSTR Pro (at" not in html
        assert f"{line.period_start:%-d %b %Y}</time> \N{EN DASH} <time" in html

    def test_an_upgrade_invoice_says_its_lines_are_prorations(
        self, owner, owner_client, stripe_harness
    ):
        stripe_harness.emulator.advance_clock(10 * DAY)
        response = owner_client.post(
            "/billing/change-plan/", {"tier": "elite", "interval": "month"}
        )
        assert response.status_code == 302
        stripe_harness.deliver()
        upgrade = owner_client.get("/billing/").context["invoices"][0]
        unused, remaining = upgrade["lines"]
        assert unused.proration and remaining.proration
        assert (
            unused.description.startswith("Unused time on Pro plan, monthly") and unused.amount < 0
        )
        assert remaining.description.startswith("Remaining time on Elite plan, monthly")
        html = owner_client.get("/billing/").content.decode()
        assert f"-${-unused.amount // 100}." in html  # a credit reads as one, not "$-12.34"

    def test_the_billing_email_and_a_tax_id_are_set_at_stripe(
        self, owner, owner_client, stripe_harness
    ):
        form = owner_client.get("/billing/").context["details_form"]
        assert form["email"].value() == "owner@example.com"
        body = {
            "email": "accounts@acme.example",
            "tax_id_type": "eu_vat",
            "tax_id_value": "DE123456789",
        }
        response = owner_client.post("/billing/details/", body, follow=True)
        assert response.redirect_chain == [("/billing/", 302)]
        assert "Saved at Stripe: tax id and billing e-mail." in response.content.decode()
        customer = stripe_customer(owner)
        assert customer.email == "accounts@acme.example"
        assert [(t.type, t.value) for t in customer.tax_ids.data] == [("eu_vat", "DE123456789")]
        # Shown at once (our call's answer), not after the webhook.
        html = response.content.decode()
        assert "<strong>DE123456789</strong>" in html and 'value="accounts@acme.example"' in html
        stripe_harness.deliver()  # the webhooks then change nothing
        assert owner_client.get("/billing/").context["details"]["email"] == "accounts@acme.example"

    def test_a_tax_id_stripe_refuses_is_a_form_error_and_nothing_changes(
        self, owner, owner_client, stripe_harness
    ):
        body = {"email": "new@acme.example", "tax_id_type": "eu_vat", "tax_id_value": "123"}
        response = owner_client.post("/billing/details/", body)
        assert response.status_code == 400
        html = response.content.decode()
        assert "Stripe did not accept this: Invalid value for eu_vat." in html
        assert '<p class="field-error" role="alert">' in html
        customer = stripe_customer(owner)
        assert customer.email == "owner@example.com" and customer.tax_ids.data == []

    def test_an_email_stripe_refuses_takes_the_new_tax_id_back(
        self, owner, owner_client, stripe_harness
    ):
        # Django takes an address at "localhost"; Stripe wants a dotted domain.
        body = {
            "email": "billing@localhost",
            "tax_id_type": "eu_vat",
            "tax_id_value": "DE123456789",
        }
        response = owner_client.post("/billing/details/", body)
        assert response.status_code == 400
        assert "Invalid email address: billing@localhost" in response.content.decode()
        customer = stripe_customer(owner)
        assert customer.email == "owner@example.com" and customer.tax_ids.data == []
        assert owner_client.get("/billing/").context["details"]["tax_ids"] == []

    def test_a_bad_email_or_a_lone_tax_id_is_refused_before_stripe(
        self, owner, owner_client, stripe_harness
    ):
        for body in (
            {"email": "not-an-address"},
            {"email": "owner@example.com", "tax_id_value": "DE123456789"},
            {"email": "owner@example.com", "tax_id_type": "xx_vat", "tax_id_value": "1"},
        ):
            assert owner_client.post("/billing/details/", body).status_code == 400
        customer = stripe_customer(owner)
        assert customer.email == "owner@example.com" and customer.tax_ids.data == []

    def test_a_tax_id_is_removed_at_stripe_only_by_its_owner(
        self, owner, owner_client, other_user, other_client, stripe_harness
    ):
        subscribe(other_client, stripe_harness)
        owner_client.post(
            "/billing/details/",
            {"email": "owner@example.com", "tax_id_type": "us_ein", "tax_id_value": "12-3456789"},
        )
        [tax_id] = stripe_customer(owner).tax_ids.data
        response = other_client.post("/billing/details/tax-id/remove/", {"tax_id": tax_id.id})
        assert response.status_code == 404
        assert [t.id for t in stripe_customer(owner).tax_ids.data] == [tax_id.id]
        response = owner_client.post("/billing/details/tax-id/remove/", {"tax_id": tax_id.id})
        assert response.status_code == 302
        assert stripe_customer(owner).tax_ids.data == []
        assert "<strong>12-3456789</strong>" not in owner_client.get("/billing/").content.decode()

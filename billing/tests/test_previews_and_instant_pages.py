"""Issue 16: the price before the charge, pages that show what Stripe just answered, and a
ledger and feed without noise. Through the pages, on the offline Stripe; webhooks are held
back until ``deliver()`` so each page is checked before any of them arrives."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import stripe
import time_machine
from django.utils import timezone

from activities.models import Activity, LedgerEntry, LedgerKind
from billing import gateway, services
from billing.reconcile import account_resync
from billing.tests.harness import SECRET_KEY, PlayedOnce, checkout_and_pay, stripe_customer_of
from subscriptions.models import CreditAccount

DAY = 86_400


def cents_in(html: str, testid: str) -> int:
    match = re.search(rf'data-testid="{testid}">\$([\d,]+)(?:\.(\d\d))?', html)
    assert match, f"no {testid} figure on the page"
    return int(match.group(1).replace(",", "")) * 100 + int(match.group(2) or 0)


def proration_date_in(html: str) -> str:
    match = re.search(r'name="proration_date" value="(\d+)"', html)
    assert match, "the confirmation carries no proration date"
    return match.group(1)


def counts(user) -> tuple[int, int]:
    return LedgerEntry.objects.filter(user=user).count(), Activity.objects.filter(user=user).count()


def subscribed(client, harness, tier: str = "pro") -> None:
    checkout_and_pay(client, harness, {"tier": tier, "interval": "month"})


def latest_update_invoice(user) -> dict:
    invoices = stripe.Invoice.list(customer=stripe_customer_of(user), api_key=SECRET_KEY).data
    updates = [i for i in invoices if i.billing_reason == "subscription_update"]
    assert updates, "Stripe made no invoice for the change"
    return max(updates, key=lambda i: i.created).to_dict()


def upgrade_as_previewed(owner, owner_client, stripe_harness) -> None:
    page = owner_client.get("/billing/change-plan/", {"tier": "elite", "interval": "month"})
    html = page.content.decode()
    due_today = cents_in(html, "due-today")
    assert 0 < due_today < 4900 - 1900  # the difference, prorated for what is left
    assert cents_in(html, "next-invoice") == 4900
    assert f"Stripe charges ${due_today // 100}" in html
    assert stripe_harness.queued == []  # a preview changes nothing at Stripe

    response = owner_client.post(
        "/billing/change-plan/",
        {"tier": "elite", "interval": "month", "proration_date": proration_date_in(html)},
        follow=True,
    )

    invoice = latest_update_invoice(owner)
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", due_today)
    # Right at once, before any webhook: the page shows what Stripe answered.
    assert "You are now on Elite." in response.content.decode()
    assert "Elite plan" in response.content.decode()
    assert CreditAccount.objects.get(user=owner).tier == "elite"
    before = counts(owner)
    stripe_harness.deliver()
    assert counts(owner) == before  # the webhook finds nothing left to change
    titles = list(Activity.objects.filter(user=owner).values_list("title", flat=True))
    assert titles.count("Plan changed to Elite") == 1


def test_a_declined_upgrade_is_not_granted_and_the_page_says_so(
    owner, owner_client, stripe_harness
):
    # A card that attaches but whose charges fail: the upgrade's invoice is not paid.
    checkout_and_pay(
        owner_client, stripe_harness, {"tier": "pro", "interval": "month"}, card="4000000000000341"
    )
    response = owner_client.post(
        "/billing/change-plan/", {"tier": "elite", "interval": "month"}, follow=True
    )
    assert "Stripe has not been paid for Elite yet, so you keep Pro" in response.content.decode()
    stripe_harness.deliver()
    assert CreditAccount.objects.get(user=owner).tier == "pro"


def test_a_downgrade_preview_is_nothing_now_and_the_next_invoice(
    owner, owner_client, stripe_harness
):
    subscribed(owner_client, stripe_harness, tier="elite")
    renews = CreditAccount.objects.get(user=owner).billing_period_end
    html = owner_client.get(
        "/billing/change-plan/", {"tier": "pro", "interval": "month"}
    ).content.decode()
    assert cents_in(html, "due-today") == 0
    assert cents_in(html, "next-invoice") == 1900
    assert f"{renews:%-d %b %Y}" in html

    response = owner_client.post(
        "/billing/change-plan/",
        {"tier": "pro", "interval": "month", "proration_date": proration_date_in(html)},
        follow=True,
    )
    page = response.content.decode()
    assert f"You switch to Pro on {renews:%-d %b %Y}." in page
    assert "Changes to Pro on" in page  # the schedule Stripe made, shown before the webhook
    before = counts(owner)
    stripe_harness.deliver()
    assert counts(owner) == before


def test_a_scheduled_downgrade_says_plan_changed_and_unused_credits_expire(
    owner, owner_client, stripe_harness
):
    subscribed(owner_client, stripe_harness, tier="elite")
    owner_client.post("/billing/change-plan/", {"tier": "pro", "interval": "month"})
    stripe_harness.deliver()
    stripe_harness.emulator.advance_clock(32 * DAY)  # the renewal: Stripe switches to Pro
    stripe_harness.deliver()

    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_remaining) == ("pro", 500)
    feed = list(Activity.objects.filter(user=owner).values_list("title", flat=True))
    assert feed.count("Plan changed to Pro") == 1
    expired = LedgerEntry.objects.get(user=owner, kind=LedgerKind.ALLOWANCE_EXPIRED)
    assert expired.monthly_delta == -2000 and expired.reason == "Monthly allowance expired"
    assert not LedgerEntry.objects.filter(
        user=owner, kind__in=(LedgerKind.PERIOD_RESET, LedgerKind.ALLOWANCE_CHANGE)
    ).filter(monthly_delta__lt=0)

    ledger = owner_client.get("/activity/", {"show": "ledger"}).content.decode()
    assert "Monthly allowance expired" in ledger
    assert "2,000 expired" in ledger and 'class="num neg">-2,000' not in ledger
    from conftest import bearer_client

    rows = bearer_client(owner).get("/api/credits/transactions").json()
    transactions = rows["data"]["transactions"] if "data" in rows else rows["transactions"]
    expiry = next(t for t in transactions if t["type"] == "allowance_expired")
    assert expiry["description"] == "Monthly allowance expired"
    assert set(expiry) == set(transactions[-1])  # the shape every row has


def test_a_downgrade_whose_page_died_after_stripe_is_shown_once_its_schedule_event_lands(
    owner, owner_client, stripe_harness, monkeypatch
):
    """The schedule's phases hold the change, and editing them is no subscription event:
    the schedule's own events carry it (found by the soak, a page cut off by a restart)."""
    subscribed(owner_client, stripe_harness, tier="elite")
    phases_set = gateway.subscription_schedule_modify

    def after_the_creation_landed(*args, **kwargs):
        stripe_harness.deliver()  # the schedule's creation: no next phase in it yet
        assert CreditAccount.objects.get(user=owner).pending_tier == ""
        return phases_set(*args, **kwargs)

    def crash(*args, **kwargs):
        raise ConnectionError("the app went away after Stripe answered")

    monkeypatch.setattr(gateway, "subscription_schedule_modify", after_the_creation_landed)
    monkeypatch.setattr(services, "returned_subscription_apply", crash)
    with pytest.raises(ConnectionError):
        owner_client.post("/billing/change-plan/", {"tier": "pro", "interval": "month"})
    assert CreditAccount.objects.get(user=owner).pending_tier == ""
    assert "subscription_schedule.updated" in stripe_harness.types()
    stripe_harness.deliver(order="reversed")
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.pending_tier) == ("elite", "pro")
    assert "Changes to Pro on" in owner_client.get("/billing/").content.decode()


def pro_from_the_pricing_page(owner, harness) -> None:
    from conftest import logged_in

    subscribed(logged_in(owner), harness)


@pytest.mark.xdist_group("previews_on_pro")
class TestOnPro(PlayedOnce):
    """Each test starts subscribed to pro monthly: ``pro_from_the_pricing_page`` played once
    for the class."""

    life = staticmethod(pro_from_the_pricing_page)

    def test_the_upgrade_preview_is_what_stripe_then_charges(
        self, owner, owner_client, stripe_harness
    ):
        # A third of the month used, on Stripe's clock and ours: a real proration.
        with time_machine.travel(timezone.now() + timedelta(days=10)):
            upgrade_as_previewed(owner, owner_client, stripe_harness)

    def test_an_out_of_date_preview_is_shown_again_and_nothing_changes(
        self, owner, owner_client, stripe_harness
    ):
        stale = int(CreditAccount.objects.get(user=owner).period_start.timestamp()) - 2 * 3600
        response = owner_client.post(
            "/billing/change-plan/",
            {"tier": "elite", "interval": "month", "proration_date": stale},
            follow=True,
        )
        assert response.redirect_chain[-1][0] == "/billing/change-plan/?tier=elite&interval=month"
        assert "review the change again" in response.content.decode()
        assert stripe_harness.queued == []
        assert CreditAccount.objects.get(user=owner).tier == "pro"

    def test_cancel_and_resume_show_at_once_and_the_webhooks_add_nothing(
        self, owner, owner_client, stripe_harness
    ):
        before = counts(owner)

        owner_client.post("/billing/subscription/cancel/")
        html = owner_client.get("/billing/").content.decode()
        assert "Cancels on" in html and "Resume subscription" in html
        assert "Cancel at period end" not in html
        assert "No further payments." in html
        assert counts(owner) == (before[0], before[1] + 1)  # a feed line, no ledger row
        stripe_harness.deliver()
        assert counts(owner) == (before[0], before[1] + 1)

        owner_client.post("/billing/subscription/resume/")
        html = owner_client.get("/billing/").content.decode()
        assert "Cancels on" not in html and "Resume subscription" not in html
        assert "Renews on" in html and "Cancel at period end" in html
        stripe_harness.deliver()
        feed = list(Activity.objects.filter(user=owner).values_list("title", flat=True))
        assert (
            feed.count("Subscription set to end") == 1 and feed.count("Subscription resumed") == 1
        )
        assert LedgerEntry.objects.filter(user=owner).count() == before[0]

    def test_cancel_now_shows_the_free_plan_at_once(self, owner, owner_client, stripe_harness):
        owner_client.post("/billing/subscription/cancel/", {"immediate": "on"})
        html = owner_client.get("/billing/").content.decode()
        assert "Free plan" in html
        assert CreditAccount.objects.get(user=owner).tier == "free"
        before = counts(owner)
        stripe_harness.deliver()
        assert counts(owner) == before
        feed = list(Activity.objects.filter(user=owner).values_list("title", flat=True))
        assert feed.count("Plan changed to Free") == 1 and feed.count("Subscription ended") == 1

    def test_portal_visits_resyncs_and_cancellations_write_no_zero_rows(
        self, owner, owner_client, stripe_harness
    ):
        for _ in range(3):
            assert owner_client.post("/billing/portal/").status_code == 303
            stripe_harness.deliver()
            account_resync(account=CreditAccount.objects.get(user=owner), reason="test")
        owner_client.post("/billing/subscription/cancel/")
        owner_client.post("/billing/subscription/resume/")
        stripe_harness.deliver()
        rows = LedgerEntry.objects.filter(user=owner).exclude(kind=LedgerKind.PERIOD_RESET)
        assert rows.count() == 1  # Pro's allowance; the rest is the free month and paid periods
        assert not rows.filter(monthly_delta=0, purchased_delta=0).exists()
        assert not LedgerEntry.objects.filter(
            user=owner, kind=LedgerKind.ALLOWANCE_EXPIRED
        ).exists()

    def test_the_billing_page_shows_the_next_payment(self, owner, owner_client, stripe_harness):
        renews = CreditAccount.objects.get(user=owner).billing_period_end
        html = owner_client.get("/billing/").content.decode()
        assert cents_in(html, "next-payment") == 1900
        assert f"{renews:%-d %b}" in html

    def test_the_billing_page_renders_without_stripe(
        self, owner, owner_client, stripe_harness, monkeypatch
    ):
        def down(**kwargs):
            raise gateway.StripeUnavailable()

        monkeypatch.setattr(gateway, "invoice_preview", down)
        response = owner_client.get("/billing/")
        assert response.status_code == 200
        assert "Your next payment cannot be shown right now" in response.content.decode()
        confirm = owner_client.get("/billing/change-plan/", {"tier": "elite", "interval": "month"})
        assert confirm.status_code == 200
        assert "figures for this change cannot be shown right now" in confirm.content.decode()

    @pytest.mark.parametrize("interval", ["year"])
    def test_a_yearly_upgrade_preview_charges_the_year_now(
        self, owner, owner_client, stripe_harness, interval
    ):
        html = owner_client.get(
            "/billing/change-plan/", {"tier": "pro", "interval": interval}
        ).content.decode()
        due_today = cents_in(html, "due-today")
        assert cents_in(html, "next-invoice") == services.plan_entry("pro", "year").amount_cents
        owner_client.post(
            "/billing/change-plan/",
            {"tier": "pro", "interval": interval, "proration_date": proration_date_in(html)},
        )
        assert latest_update_invoice(owner)["amount_paid"] == due_today
        assert CreditAccount.objects.get(user=owner).billing_interval == "year"

    def test_a_change_made_at_stripe_has_one_feed_line_however_often_delivered(
        self, owner, owner_client, stripe_harness
    ):
        """A plan switched outside our pages (the portal, the dashboard) reaches the feed once."""
        subscription_id = CreditAccount.objects.get(user=owner).stripe_subscription_id
        subscription = stripe.Subscription.retrieve(subscription_id, api_key=SECRET_KEY)
        elite = services.price_id_for("elite_monthly")
        stripe.Subscription.modify(
            subscription_id,
            items=[{"id": subscription["items"]["data"][0]["id"], "price": elite}],
            proration_behavior="always_invoice",
            api_key=SECRET_KEY,
        )
        stripe_harness.deliver(duplicate=True, order="shuffled", seed=3)
        assert CreditAccount.objects.get(user=owner).tier == "elite"
        feed = list(Activity.objects.filter(user=owner).values_list("title", flat=True))
        assert feed.count("Plan changed to Elite") == 1
        assert not LedgerEntry.objects.filter(
            user=owner, kind=LedgerKind.ALLOWANCE_CHANGE, monthly_delta=0, purchased_delta=0
        ).exists()

    def test_an_upgrade_after_cancelling_is_previewed_and_charged_alike(
        self, owner, owner_client, stripe_harness
    ):
        """The change resumes the plan first; its preview does the same, so the figures hold."""
        owner_client.post("/billing/subscription/cancel/")
        html = owner_client.get(
            "/billing/change-plan/", {"tier": "elite", "interval": "month"}
        ).content.decode()
        due_today = cents_in(html, "due-today")
        assert cents_in(html, "next-invoice") == 4900
        owner_client.post(
            "/billing/change-plan/",
            {"tier": "elite", "interval": "month", "proration_date": proration_date_in(html)},
        )
        assert latest_update_invoice(owner)["amount_paid"] == due_today
        account = CreditAccount.objects.get(user=owner)
        assert (account.tier, account.cancel_at_period_end) == ("elite", False)

    def test_back_from_the_portal_the_page_shows_its_card_and_cancellation_at_once(
        self, owner, owner_client, stripe_harness
    ):
        """What the customer did in Stripe's portal is on the page they come back to, before any
        of its webhooks arrives; the webhooks then change nothing more."""
        from urllib.parse import urlencode, urlsplit

        subscription_id = CreditAccount.objects.get(user=owner).stripe_subscription_id
        session_id = owner_client.post("/billing/portal/")["Location"].rsplit("/", 1)[-1]
        emulator = stripe_harness.emulator
        for action in (
            {"action": "card", "card_number": "5555555555554444"},
            {"action": "cancel_at_period_end", "subscription": subscription_id},
        ):
            emulator.handle(
                "POST",
                f"/portal/{session_id}",
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(action),
            )
        assert stripe_harness.queued  # held back: the page below cannot have used them
        return_url = urlsplit(emulator.store.get(session_id)["return_url"])
        assert owner_client.get(return_url.path, follow=True).status_code == 200
        html = owner_client.get("/billing/").content.decode()
        assert "Mastercard</strong> ending in 4444" in html
        assert "Cancels on" in html and "Resume subscription" in html
        after = counts(owner)
        stripe_harness.deliver()
        assert counts(owner) == after
        assert CreditAccount.objects.get(user=owner).cancel_at_period_end is True

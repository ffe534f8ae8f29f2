"""Whole customer lives on the offline Stripe with realistic delivery, under several chaos seeds.

One clock drives both sides: ``time_machine`` moves the wall clock, which is the emulator's
clock and Django's, so renewals, the renewal hour, dunning retries, grace periods and monthly
resets all fall due together when a life "waits". Webhooks are posted to our endpoint with
their real signatures while the emulator's chaos mode duplicates some, holds some back for up
to three days and delivers whatever is due in a random order (last month's events can land
after this month's renewal); one delivery in ten finds our endpoint down (503) and is retried
on Stripe's schedule.

After every step the account must sum to its ledger, and at the end of each life the credits
must be exactly what Stripe's invoices, refunds and disputes call for.

``HRVSTR_SCENARIO_SEEDS`` (default ``1``, about 25 s) chooses the chaos seeds; CI runs 20.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

import pytest
import stripe
import time_machine
from django.test import Client

from activities.models import Activity, ActivityType, LedgerEntry, LedgerKind
from billing.stripe_data import invoice_subscription_period
from billing.tests.harness import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    endpoint_subscribe,
    payment_intent_of,
    stripe_customer_of,
)
from conftest import bearer_client
from stripe_emulator import Emulator
from stripe_emulator.client import EmulatorHTTPClient
from subscriptions import catalogue
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift

DAY, HOUR = 86400, 3600
RETRIES_SETTLED = 8  # rounds of retries ``settle`` lets arrive (each fails with OUTAGE)
OUTAGE = 0.1  # the share of deliveries our endpoint fails (a deploy, a timeout)
SEEDS = [int(s) for s in os.environ.get("HRVSTR_SCENARIO_SEEDS", "1").split(",") if s.strip()]
START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


class Life:
    """One customer on the offline Stripe, with one clock for Stripe and the app."""

    def __init__(self, user, emulator: Emulator, traveller) -> None:
        self.user = user
        self.emu = emulator
        self.traveller = traveller
        self.statuses: list[int] = []

    # --- the customer's side -------------------------------------------------------------
    @property
    def api(self):
        return bearer_client(self.user)  # a fresh token: the clock moves by weeks

    def tier_info(self) -> dict:
        return self.api.get("/api/subscription/tier-info").json()["data"]

    def checkout(self, body: dict, **pay) -> str:
        response = self.api.post("/api/billing/create-checkout-session", body, format="json")
        assert response.status_code == 200, response.json()
        session_id = response.json()["sessionId"]
        if pay.pop("pay", True):
            self.emu.complete_checkout(session_id, **pay)
        return session_id

    def spend(self, quantity: int) -> None:
        response = self.api.post(
            "/api/credits/spend",
            {"action": "ai_ticker_analysis", "quantity": quantity},
            format="json",
        )
        assert response.status_code == 200, response.json()

    def post(self, path: str, body: dict | None = None) -> None:
        response = self.api.post(f"/api/billing/{path}", body or {}, format="json")
        assert response.status_code == 200, (path, response.json())

    # --- time and delivery ---------------------------------------------------------------
    def wait(self, seconds: int) -> None:
        """Let time pass: Stripe runs what fell due and delivers what is due."""
        self.traveller.shift(seconds)
        self.emu.run_due()
        self.check_ledger()

    def settle(self) -> None:
        """Let every held-back delivery arrive, and the retries of those our endpoint failed
        (``deliver_late`` sends each at its own time; a failure queues its retry for later),
        without moving the clock."""
        self.emu.deliver_late()
        for _ in range(RETRIES_SETTLED):
            if self.emu.next_delivery_at() is None:
                break
            self.emu.deliver_late()
        self.check_ledger()

    # --- what must hold --------------------------------------------------------------------
    def account(self) -> CreditAccount:
        return CreditAccount.objects.get(user=self.user)

    def check_ledger(self) -> None:
        assert ledger_drift(account=self.account()) == {}
        # Every row moves credits (issue 16): a change of state alone is no ledger row.
        idle = LedgerEntry.objects.filter(user=self.user, monthly_delta=0, purchased_delta=0)
        assert not idle.exists(), list(idle.values_list("kind", "reason", "source"))

    def customer(self) -> str:
        return stripe_customer_of(self.user)

    def stripe_subscription(self) -> dict | None:
        customer = self.account().stripe_customer_id
        if not customer:
            return None
        subs = stripe.Subscription.list(customer=customer, status="all", api_key=SECRET_KEY).data
        live = [s for s in subs if s.status in ("active", "trialing", "past_due")]
        return live[0].to_dict() if live else None

    def live_subscription(self) -> dict:
        sub = self.stripe_subscription()
        assert sub is not None, "no live subscription at Stripe"
        return sub

    def check_against_stripe(self, *, purchased: int) -> None:
        """Tier from Stripe's live subscription; the allowance the catalogue gives that tier;
        this period's reset from Stripe's latest paid renewal invoice; purchased credits as
        the bundles, refunds and disputes on Stripe call for."""
        self.settle()
        account = self.account()
        sub = self.stripe_subscription()
        if sub is None:
            assert account.tier == "free"
        else:
            lookup_key = sub["items"]["data"][0]["price"]["lookup_key"]
            entry = catalogue.PRICES_BY_LOOKUP_KEY[lookup_key]
            assert entry.tier is not None and account.tier == entry.tier.key
            assert account.subscription_status == sub["status"]
            paid = [
                inv
                for inv in stripe.Invoice.list(
                    customer=self.customer(), status="paid", api_key=SECRET_KEY
                ).data
                if inv.billing_reason in ("subscription_create", "subscription_cycle")
                and inv.parent is not None
                and inv.parent.subscription_details is not None
                and inv.parent.subscription_details.subscription == sub["id"]
            ]
            latest = max(paid, key=lambda inv: inv.period_end)
            # Its period began here: reset by this invoice, or already begun when it came (the
            # subscription's own event granted the first period; a yearly month rolled).
            period = invoice_subscription_period(latest.to_dict())
            assert period is not None
            assert (
                account.period_anchor == period[0]
                or LedgerEntry.objects.filter(
                    user=self.user, kind=LedgerKind.PERIOD_RESET, source=latest.id
                ).exists()
            ), f"the period {latest.id} paid for never began"
        assert account.monthly_allowance == catalogue.TIERS[account.tier].monthly_credits
        assert account.purchased_balance == purchased


@pytest.fixture
def realistic_stripe(settings, db, request):
    """The offline Stripe with chaos delivery straight into our webhook endpoint."""
    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    with time_machine.travel(START, tick=False) as traveller:
        emulator = Emulator(delivery="sync")
        emulator.set_chaos(True, seed=request.param)
        django = Client()
        outages = random.Random(request.param)

        def post(body: bytes, headers: dict[str, str]) -> int:
            if outages.random() < OUTAGE:  # our endpoint was down: Stripe retries later
                return 503
            return django.post(
                "/api/billing/webhook",
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            ).status_code

        endpoint_subscribe(emulator, post)
        previous = stripe.default_http_client
        stripe.default_http_client = EmulatorHTTPClient(emulator)
        try:
            from billing.catalogue_sync import catalogue_sync

            catalogue_sync()
            yield emulator, traveller
        finally:
            stripe.default_http_client = previous
            emulator.close()


def life_of(user, realistic_stripe) -> Life:
    emulator, traveller = realistic_stripe
    return Life(user, emulator, traveller)


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_a_subscribers_life(owner, realistic_stripe):
    """Subscribe, buy credits, upgrade, a failed renewal and its recovery, a refund, a
    dispute lost and one won, cancel at the period end, fall to free, resubscribe."""
    life = life_of(owner, realistic_stripe)
    life.checkout({"tier": "pro", "interval": "month"})
    life.settle()
    assert (life.tier_info()["tier"], life.tier_info()["credits"]["remaining"]) == ("pro", 500)
    bundle = life.checkout({"bundle": "credits_250"})
    life.settle()
    life.check_against_stripe(purchased=250)
    life.spend(100)  # from the monthly allowance: purchased credits stay whole

    life.post("change-plan", {"tier": "elite", "interval": "month"})
    customer = life.customer()
    life.emu.set_renewal_outcome(customer, "fail")
    # No settling: the upgrade's held-back events may land after the renewal's.
    life.wait(31 * DAY + 2 * HOUR)  # the renewal (an hour into the period) fails
    life.settle()
    assert life.account().subscription_status == "past_due"
    assert life.account().tier == "elite"  # kept through the grace period
    life.emu.set_renewal_outcome(customer, "succeed")
    life.wait(3 * DAY)  # Stripe's first retry pays
    life.check_against_stripe(purchased=250)
    assert life.tier_info()["credits"]["remaining"] == 2000 + 250

    stripe.Refund.create(payment_intent=payment_intent_of(bundle), api_key=SECRET_KEY)
    life.wait(HOUR)
    life.check_against_stripe(purchased=0)

    lost = life.checkout({"bundle": "credits_250"}, card="4000000000002685")
    won = life.checkout({"bundle": "credits_250"}, card="4000000000000259")
    life.wait(HOUR)
    life.check_against_stripe(purchased=0)  # both charged back
    for session_id, text in ((lost, "losing_evidence"), (won, "winning_evidence")):
        [dispute] = stripe.Dispute.list(
            payment_intent=payment_intent_of(session_id), api_key=SECRET_KEY
        ).data
        stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": text}, api_key=SECRET_KEY)
    life.wait(HOUR)
    life.check_against_stripe(purchased=250)  # the won dispute gave its credits back

    life.post("cancel-subscription")
    life.settle()
    assert life.account().cancel_at_period_end
    life.wait(32 * DAY)
    life.check_against_stripe(purchased=250)
    assert life.account().tier == "free"

    life.checkout({"tier": "pro", "interval": "month"})
    life.wait(HOUR)
    life.check_against_stripe(purchased=250)
    assert life.tier_info()["credits"]["remaining"] == 500 + 250


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_a_life_that_ends_in_dunning(owner, realistic_stripe):
    """A renewal that never pays: the tier holds through the grace period, then free."""
    life = life_of(owner, realistic_stripe)
    life.checkout({"tier": "pro", "interval": "month"}, card="4000000000000341")
    life.settle()
    life.checkout({"bundle": "credits_250"})
    life.wait(31 * DAY + 2 * HOUR)
    life.settle()
    assert (life.account().tier, life.account().subscription_status) == ("pro", "past_due")
    for _ in range(4):
        life.wait(5 * DAY)
    life.check_against_stripe(purchased=250)
    assert life.account().tier == "free"


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_a_bank_debit_and_a_failed_refund(owner, realistic_stripe):
    life = life_of(owner, realistic_stripe)
    life.checkout({"tier": "pro", "interval": "month"})
    life.settle()
    debit = life.checkout({"bundle": "credits_250"}, bank_account="000123456789")
    life.wait(HOUR)
    life.check_against_stripe(purchased=0)  # nothing until the debit settles
    life.wait(4 * DAY)
    life.check_against_stripe(purchased=250)
    returned = life.checkout({"bundle": "credits_250"}, bank_account="000111111113")
    life.wait(4 * DAY + HOUR)
    life.check_against_stripe(purchased=250)
    assert returned
    failing = life.checkout({"bundle": "credits_250"}, card="4000000000005126")
    life.settle()
    stripe.Refund.create(payment_intent=payment_intent_of(failing), api_key=SECRET_KEY)
    life.wait(60)
    life.check_against_stripe(purchased=250)  # refunded: clawed back
    life.wait(HOUR)
    life.check_against_stripe(purchased=500)  # the refund failed: restored
    assert debit


def trial_checkout(life: Life, days: int) -> str:
    """A trial Checkout for the customer (as a dashboard link or a later offer would make)."""
    from billing.services import customer_ensure, price_id_for

    metadata = {"hrvstr_user_id": str(life.user.pk)}
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer_ensure(user=life.user),
        line_items=[{"price": price_id_for("pro_monthly"), "quantity": 1}],
        success_url="http://testserver/billing/success/",
        client_reference_id=str(life.user.pk),
        metadata=metadata,
        subscription_data={"metadata": metadata, "trial_period_days": days},
        api_key=SECRET_KEY,
    )
    life.emu.complete_checkout(session.id)
    return session.id


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_a_trial_that_converts_then_cancels(owner, realistic_stripe):
    """A trial grants the tier's allowance (the catalogue's), its end starts the first paid
    period with a fresh allowance, and a cancellation at the period end falls to free."""
    life = life_of(owner, realistic_stripe)
    trial_checkout(life, 14)
    life.settle()
    assert life.live_subscription()["status"] == "trialing"
    life.check_against_stripe(purchased=0)
    assert (life.account().tier, life.tier_info()["credits"]["remaining"]) == ("pro", 500)
    life.spend(200)
    life.wait(11 * DAY + HOUR)  # Stripe's trial_will_end comes three days before the end
    life.settle()  # chaos may hold it back: while the trial lasts, it still tells
    [notice] = Activity.objects.filter(user=owner, activity_type=ActivityType.TRIAL_ENDING)
    assert notice.title == "Your Pro trial ends soon" and "charged $19 then" in notice.description
    life.wait(3 * DAY + HOUR)  # the trial ends; the first charge an hour later
    life.check_against_stripe(purchased=0)
    assert life.live_subscription()["status"] == "active"
    assert Activity.objects.filter(user=owner, activity_type=ActivityType.TRIAL_ENDING).count() == 1
    assert life.tier_info()["credits"]["remaining"] == 500
    life.post("cancel-subscription")
    life.wait(32 * DAY)
    life.check_against_stripe(purchased=0)
    assert life.account().tier == "free"


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_coupons_never_change_credits(owner, realistic_stripe):
    """A 50%-off-forever code on the plan, a free bundle and a half-price refunded bundle: the
    credits are the catalogue's whatever was paid, and a full refund takes the whole bundle."""
    life = life_of(owner, realistic_stripe)
    half = stripe.Coupon.create(percent_off=50, duration="forever", api_key=SECRET_KEY)
    free = stripe.Coupon.create(percent_off=100, duration="once", api_key=SECRET_KEY)
    for coupon, code in ((half, "HALFOFF"), (free, "ONTHEHOUSE")):
        stripe.PromotionCode.create(
            promotion={"type": "coupon", "coupon": coupon.id}, code=code, api_key=SECRET_KEY
        )
    life.checkout({"tier": "pro", "interval": "month"}, promotion_code="HALFOFF")
    life.settle()
    life.check_against_stripe(purchased=0)
    assert life.tier_info()["credits"]["remaining"] == 500
    life.checkout({"bundle": "credits_250"}, promotion_code="ONTHEHOUSE")
    half_price = life.checkout({"bundle": "credits_250"}, promotion_code="HALFOFF")
    life.settle()
    life.check_against_stripe(purchased=500)
    stripe.Refund.create(payment_intent=payment_intent_of(half_price), api_key=SECRET_KEY)
    life.wait(32 * DAY)  # and a discounted renewal
    life.check_against_stripe(purchased=250)
    invoices = stripe.Invoice.list(customer=life.customer(), api_key=SECRET_KEY).data
    assert {inv.amount_paid for inv in invoices if inv.billing_reason != "manual"} == {950}
    # The half-price bundle's receipt says what was paid; the free one had no payment.
    assert [inv.amount_paid for inv in invoices if inv.billing_reason == "manual"] == [500]
    assert life.tier_info()["credits"]["remaining"] == 500 + 250


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_other_billing_reasons_and_a_switch_to_yearly(owner, realistic_stripe):
    """Manual and threshold invoices are paid but start no period (spent credits stay spent);
    a monthly-to-yearly switch restarts the billing period now, as Stripe does, and the
    yearly plan then renews the allowance every month within its year."""
    from billing.services import price_id_for

    life = life_of(owner, realistic_stripe)
    life.checkout({"tier": "pro", "interval": "month"})
    life.settle()
    life.spend(100)
    customer = life.customer()
    sub_id = life.live_subscription()["id"]
    stripe.InvoiceItem.create(
        customer=customer, pricing={"price": price_id_for("credits_250")}, subscription=sub_id,
        api_key=SECRET_KEY,
    )  # fmt: skip
    manual = stripe.Invoice.create(
        customer=customer, pending_invoice_items_behavior="include", api_key=SECRET_KEY
    )
    stripe.Invoice.finalize_invoice(manual.id, api_key=SECRET_KEY)
    stripe.Invoice.pay(manual.id, api_key=SECRET_KEY)
    stripe.InvoiceItem.create(
        customer=customer, pricing={"price": price_id_for("credits_250")}, subscription=sub_id,
        api_key=SECRET_KEY,
    )  # fmt: skip
    life.emu.handle("POST", f"/_emulator/subscriptions/{sub_id}/threshold_invoice", {}, b"")
    life.settle()
    invoices = stripe.Invoice.list(customer=customer, api_key=SECRET_KEY).data
    reasons = {inv.billing_reason for inv in invoices}
    assert {"manual", "subscription_threshold"} <= reasons
    life.check_against_stripe(purchased=0)
    assert life.tier_info()["credits"]["remaining"] == 400

    life.wait(10 * DAY)
    life.post("change-plan", {"tier": "pro", "interval": "year"})
    life.settle()
    sub = life.live_subscription()
    item = sub["items"]["data"][0]
    assert item["price"]["lookup_key"] == "pro_yearly"
    assert item["current_period_end"] - item["current_period_start"] >= 365 * DAY
    life.check_against_stripe(purchased=0)
    assert life.account().billing_interval == "year"
    for _ in range(2):  # the yearly plan's monthly allowance rolls on the app's clock
        life.spend(50)
        life.wait(31 * DAY)
        life.check_against_stripe(purchased=0)
        assert life.tier_info()["credits"]["remaining"] == 500


@pytest.mark.parametrize("realistic_stripe", SEEDS, indirect=True)
def test_a_renewal_that_needs_3d_secure(owner, realistic_stripe):
    """The bank wants the customer at every charge: the renewal waits (past_due, the tier
    kept, the customer told where to confirm), and the confirmed payment starts the period."""
    from activities.models import Activity

    life = life_of(owner, realistic_stripe)
    life.checkout({"tier": "pro", "interval": "month"}, card="4000002760003184")
    life.settle()
    life.spend(300)
    life.wait(31 * DAY + 2 * HOUR)
    life.settle()
    assert (life.account().tier, life.account().subscription_status) == ("pro", "past_due")
    assert life.tier_info()["credits"]["remaining"] == 200
    notice = Activity.objects.get(user=owner, title="Confirm your payment")
    assert "/invoices/in_" in notice.description
    [waiting] = stripe.PaymentIntent.list(customer=life.customer(), api_key=SECRET_KEY).data[:1]
    assert waiting.status == "requires_action"
    life.emu.handle("POST", f"/authenticate/{waiting.id}", {}, b"outcome=complete")
    life.settle()
    life.check_against_stripe(purchased=0)
    assert life.account().subscription_status == "active"
    assert life.tier_info()["credits"]["remaining"] == 500

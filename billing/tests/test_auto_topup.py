"""Auto top-up (issue 16): a bundle bought off-session with the saved card when the credits
fall below the customer's threshold; once per crossing, at most N a period, off (and said
so) after a decline; refunds claw back and reconcile checks it. Offline Stripe, real flows."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from activities.models import Activity, LedgerEntry
from billing.tests.harness import SECRET_KEY, PlayedOnce, checkout_and_pay
from subscriptions.models import CreditAccount

pytestmark = pytest.mark.django_db


def spend(api, quantity: int) -> None:
    response = api.post(
        "/api/credits/spend",
        {"action": "ai_ticker_analysis", "quantity": quantity},
        format="json",
    )
    assert response.status_code == 200, response.json()


def top_ups(owner) -> list[LedgerEntry]:
    return list(
        LedgerEntry.objects.filter(user=owner, idempotency_key__startswith="auto-topup:").order_by(
            "id"
        )
    )


def intents_of(emulator, owner) -> list[dict]:
    customer = CreditAccount.objects.get(user=owner).stripe_customer_id
    return [
        pi
        for pi in emulator.store.all("payment_intent")
        if pi["customer"] == customer and (pi.get("metadata") or {}).get("hrvstr_auto_topup")
    ]


def test_free_plans_cannot_turn_it_on_and_bad_input_is_a_400(owner, owner_client):
    assert owner_client.post("/billing/auto-topup/", {"below": "50"}).status_code == 403
    for bad in ("-1", "many", ""):
        assert owner_client.post("/billing/auto-topup/", {"below": bad}).status_code == 400
    assert CreditAccount.objects.get(user=owner).auto_topup_below == 0


def pro_with_a_threshold(owner, harness) -> None:
    """Pro, with auto top-up on below 100 credits."""
    from conftest import logged_in

    client = logged_in(owner)
    checkout_and_pay(client, harness, {"tier": "pro"})
    assert client.post("/billing/auto-topup/", {"below": "100"}).status_code == 302


@pytest.mark.xdist_group("auto_topup_on")
class TestAutoTopUpOn(PlayedOnce):
    """Each test starts from ``pro_with_a_threshold``, played once for the class."""

    life = staticmethod(pro_with_a_threshold)

    @pytest.fixture
    def pro_with_auto_topup(self, owner, stripe_harness):
        assert CreditAccount.objects.get(user=owner).auto_topup_below == 100
        return owner

    def test_falling_below_buys_one_bundle_with_the_saved_card(
        self, pro_with_auto_topup, owner, api, stripe_harness
    ):
        spend(api, 380)  # 500 -> 120: above the threshold, nothing bought
        assert top_ups(owner) == []
        spend(api, 30)  # 90 left: below 100
        [bought] = top_ups(owner)
        [intent] = intents_of(stripe_harness.emulator, owner)
        assert intent["status"] == "succeeded" and intent["amount"] == 1000
        assert bought.purchased_delta == 250 and bought.details["payment_intent"] == intent["id"]
        assert bought.details["amount_cents"] == 1000  # what refunds are measured against
        assert CreditAccount.objects.get(user=owner).remaining == 90 + 250
        assert Activity.objects.filter(user=owner, title="Auto top-up: 250 credits").count() == 1
        stripe_harness.deliver()  # Stripe's payment events change nothing more
        assert len(top_ups(owner)) == 1

    def test_a_second_trigger_for_the_same_crossing_buys_nothing(
        self, pro_with_auto_topup, owner, api, stripe_harness
    ):
        from billing.auto_topup import auto_topup_run

        spend(api, 490)  # 10 left: the spend's own trigger buys one bundle
        assert len(top_ups(owner)) == 1
        # Another trigger that still saw 10 left (a second worker, a retry after a crash).
        stale = CreditAccount.objects.get(user=owner)
        assert auto_topup_run(account=stale, remaining=10) is None
        assert len(top_ups(owner)) == 1
        assert len(intents_of(stripe_harness.emulator, owner)) == 1

    def test_a_crash_between_payment_and_grant_is_repaired_without_a_second_charge(
        self, pro_with_auto_topup, owner, api, stripe_harness, monkeypatch
    ):
        from billing import auto_topup
        from subscriptions import services

        real = services.credits_purchase_add

        def crash(**kwargs):
            raise RuntimeError("the worker died after Stripe charged")

        monkeypatch.setattr(services, "credits_purchase_add", crash)
        spend(api, 490)  # the spend still answers 200: it committed before the top-up
        monkeypatch.setattr(services, "credits_purchase_add", real)
        assert top_ups(owner) == [] and len(intents_of(stripe_harness.emulator, owner)) == 1
        auto_topup.auto_topups_sweep()  # the next minute's sweep: same key, same payment
        assert len(top_ups(owner)) == 1
        assert len(intents_of(stripe_harness.emulator, owner)) == 1

    def test_at_most_the_cap_per_period(
        self, pro_with_auto_topup, owner, api, settings, stripe_harness
    ):
        settings.AUTO_TOPUP_MAX_PER_PERIOD = 2
        for _ in range(4):  # each time down to 10 left, below the threshold
            if (left := CreditAccount.objects.get(user=owner).remaining - 10) > 0:
                spend(api, left)
        assert len(top_ups(owner)) == 2
        assert len(intents_of(stripe_harness.emulator, owner)) == 2

    def test_a_declined_card_turns_it_off_and_says_so(
        self,
        pro_with_auto_topup,
        owner,
        owner_client,
        api,
        stripe_harness,
        mailoutbox,
        django_capture_on_commit_callbacks,
    ):
        emulator = stripe_harness.emulator
        response = owner_client.post("/billing/portal/")
        path = "/portal/" + response["Location"].rsplit("/", 1)[-1]
        body = urlencode({"action": "card", "card_number": "4000000000000002"})
        emulator.handle("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body)
        with django_capture_on_commit_callbacks(execute=True):
            spend(api, 450)
        assert top_ups(owner) == []
        assert CreditAccount.objects.get(user=owner).auto_topup_below == 0
        [notice] = Activity.objects.filter(user=owner, title="Auto top-up is off")
        assert "declined" in notice.description.lower()
        assert [m.subject for m in mailoutbox if "auto top-up" in m.subject] == [
            "HRVSTR auto top-up is off"
        ]

    def test_a_refunded_top_up_is_clawed_back_and_reconcile_finds_nothing(
        self, pro_with_auto_topup, owner, api, stripe_harness
    ):
        import stripe
        from django.core.management import call_command

        spend(api, 450)
        [bought] = top_ups(owner)
        out = __import__("io").StringIO()
        call_command("reconcile_billing", stdout=out)
        assert (
            "auto top-up" not in out.getvalue() and "payment does not match" not in out.getvalue()
        )
        stripe.Refund.create(payment_intent=bought.details["payment_intent"], api_key=SECRET_KEY)
        stripe_harness.deliver()
        assert CreditAccount.objects.get(user=owner).purchased_balance == 0

    def test_cron_without_a_task_queue_tops_up_what_no_spend_did(self, pro_with_auto_topup, owner):
        """Credits taken by something other than a spend (here support's correction): the
        upkeep buys the bundle, from the scheduler or from the cron command alike."""
        from io import StringIO

        from django.core.management import call_command

        from subscriptions.services import credits_adjust

        credits_adjust(
            user=owner,
            amount=-450,
            reason="Duplicate grant reversed",
            staff_user=None,
            idempotency_key="fix",
        )
        assert top_ups(owner) == []
        out = StringIO()
        call_command("grant_monthly_allowances", stdout=out)
        assert "auto topups: 1" in out.getvalue()
        assert len(top_ups(owner)) == 1
        assert CreditAccount.objects.get(user=owner).remaining == 50 + 250
        call_command("grant_monthly_allowances", stdout=out)
        assert len(top_ups(owner)) == 1  # one per crossing

    def test_a_failing_reaction_neither_fails_the_spend_nor_skips_the_top_up(
        self, pro_with_auto_topup, owner, api, monkeypatch
    ):
        from subscriptions import services

        def broken(**kwargs):
            raise RuntimeError("a mail server down")

        monkeypatch.setattr(services, "AFTER_SPEND_STEPS", [broken, *services.AFTER_SPEND_STEPS])
        spend(api, 410)  # 90 left: below 100; the spend answers 200 all the same
        assert len(top_ups(owner)) == 1

"""Auto top-up: when a customer who opted in falls below their threshold, buy a credit
bundle with the saved card, off-session.

Money rules:
- Idempotent per crossing: the Stripe idempotency key and the ledger key are the same
  ``auto-topup:<user>:<period>:<n>`` (the n-th top-up of the allowance period). Two triggers at
  once send the same key: Stripe makes one payment, the ledger grants once. A crash after the
  payment and before the grant is repaired by the next trigger, which sends the same key.
- At most ``AUTO_TOPUP_MAX_PER_PERIOD`` top-ups per allowance period.
- A declined card (or a bank that wants the customer present) turns auto top-up off and
  says so in the feed and by e-mail; Stripe being unreachable only waits for the next try.
- Credits come from the catalogue's bundle, the purchase row names its PaymentIntent, so
  refunds and disputes claw back through billing/clawbacks.py and reconcile_billing checks it.
- No Stripe call runs under the account's row lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from activities.models import ActivityType, LedgerEntry, LedgerKind
from activities.notifications import email_once
from activities.services import activity_record
from billing import gateway
from billing.stripe_data import object_id, to_dict
from hrvstr.formatting import cents
from subscriptions import catalogue, services
from subscriptions.models import CreditAccount

logger = logging.getLogger(__name__)
KEY_PREFIX = "auto-topup:"


@dataclass(frozen=True)
class TopUp:
    bought: bool
    message: str


def bundle_for(account: CreditAccount) -> catalogue.Bundle | None:
    """The bundle auto top-up buys for this account's tier (None: its plan sells none)."""
    tier = catalogue.TIERS[account.tier]
    return next((b for b in catalogue.BUNDLES.values() if tier.allows(b)), None)


def _period_prefix(account: CreditAccount) -> str:
    return f"{KEY_PREFIX}{account.user_id}:{account.period_start:%Y%m%dT%H%M%S}:"


def auto_topup_run(*, account: CreditAccount, remaining: int) -> TopUp | None:
    """Buy a bundle if ``account`` opted in and ``remaining`` is below its threshold (None:
    nothing to do, or try again later)."""
    below = account.auto_topup_below
    if not below or remaining >= below or not account.stripe_customer_id:
        return None
    bundle = bundle_for(account)
    if bundle is None:
        return None
    prefix = _period_prefix(account)
    done = LedgerEntry.objects.filter(
        user_id=account.user_id, kind=LedgerKind.PURCHASE, idempotency_key__startswith=prefix
    ).count()
    if done >= settings.AUTO_TOPUP_MAX_PER_PERIOD:
        return None
    # The balance again, read after the count: a top-up committed since the caller's figure
    # shows here (then nothing to do), and one not committed yet has the same key as ours
    # (then Stripe and the ledger answer with the same payment and the same grant).
    fresh = CreditAccount.objects.get(pk=account.pk)
    if fresh.remaining >= below:
        return None
    key = f"{prefix}{done + 1}"
    card = _saved_card(account)
    if not card:
        return _turn_off(account, prefix, "there is no card on file")
    try:
        intent = to_dict(
            gateway.payment_intent_create(
                amount=bundle.price_cents,
                currency="usd",
                customer=account.stripe_customer_id,
                payment_method=card,
                off_session=True,
                confirm=True,
                description=f"Auto top-up: {bundle.name}",
                metadata={
                    "hrvstr_user_id": str(account.user_id),
                    "hrvstr_bundle": bundle.key,
                    "hrvstr_auto_topup": key,
                },
                idempotency_key=key,
            )
        )
    except gateway.CardDeclined as exc:
        return _turn_off(account, prefix, exc.message)
    except (gateway.StripeUnavailable, gateway.StripeRequestFailed) as exc:
        logger.warning(
            "auto top-up %s: Stripe did not take it (%s); next trigger retries", key, exc
        )
        return None
    if intent.get("status") != "succeeded":
        return _turn_off(account, prefix, "your bank asks you to confirm each payment")
    entry = services.credits_purchase_add(
        user=account.user,
        credits=bundle.credits,
        idempotency_key=key,
        source=intent["id"],
        reason=f"Auto top-up: {bundle.name}",
        payment_intent=intent["id"],
        # What a refund or dispute is measured against (billing/clawbacks.py): without it the
        # purchase would count as free and no refund could take its credits back.
        amount_cents=int(intent.get("amount_received") or bundle.price_cents),
        bundle=bundle.key,
    )
    activity_record(
        user=account.user,
        activity_type=ActivityType.CREDITS_PURCHASED,
        title=f"Auto top-up: {bundle.credits} credits",
        description=f"{cents(bundle.price_cents)} charged to your saved card.",
        ledger_entry=entry,
        dedupe_key=key,
    )
    return TopUp(True, f"{bundle.credits} credits bought")


def _saved_card(account: CreditAccount) -> str | None:
    """The card Stripe would charge: the customer's default, else the subscription's (what
    Checkout saves)."""
    assert account.stripe_customer_id
    customer = to_dict(gateway.customer_retrieve(account.stripe_customer_id))
    card = object_id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if card or not account.stripe_subscription_id:
        return card
    subscription = to_dict(gateway.subscription_retrieve(account.stripe_subscription_id))
    return object_id(subscription.get("default_payment_method"))


def _turn_off(account: CreditAccount, prefix: str, why: str) -> TopUp:
    services.auto_topup_below_set(user=account.user, below=0)
    message = f"We could not buy credits with your card: {why}. Auto top-up is now off."
    activity_record(
        user=account.user,
        activity_type=ActivityType.PAYMENT_FAILED,
        title="Auto top-up is off",
        description=message,
        dedupe_key=f"{prefix}off",
    )
    email_once(
        user=account.user,
        key=f"{prefix}off",
        kind="auto_topup_off",
        context={"why": why},
    )
    return TopUp(False, message)


def auto_topups_sweep() -> int:
    """The scheduled pass: every opted-in account below its threshold (whatever took the
    credits). Returns how many bundles it bought."""
    below = (
        CreditAccount.objects.below("auto_topup_below")
        .exclude(stripe_customer_id=None)
        .select_related("user")
    )
    bought = 0
    for account in below.iterator():
        outcome = auto_topup_run(account=account, remaining=account.remaining)
        bought += bool(outcome and outcome.bought)
    return bought

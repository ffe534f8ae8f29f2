"""Our accounts against Stripe: what differs (drift) and how to repair it.

``reconcile_billing`` and the admin's "Resync from Stripe" come here. Repairs apply Stripe's
*current* state through the same rules as webhooks (``billing.sync``), then check again: only
what the second look finds in sync counts as repaired. Deliberate differences are not drift:
an account that fell to free when its grace period ended while Stripe still retries the
payment (``past_due``), or a downgrade Stripe has scheduled for the period end.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from activities.models import LedgerEntry, LedgerKind
from billing import auto_topup, gateway
from billing.customer_order import customer_serialize
from billing.duplicates import duplicates_end, live_in_keeping_order
from billing.stripe_data import checkout_price_lookup_keys, object_id, to_dict
from billing.sync import (
    PAID,
    customer_unlink,
    state_for,
    stripe_time_of,
    subscription_apply,
    subscription_end_here,
)
from subscriptions import catalogue
from subscriptions.catalogue import FREE_TIER
from subscriptions.models import LIVE_STATUSES, CreditAccount, SubscriptionStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    user_id: int
    email: str
    field: str
    ours: Any
    stripe: Any


def _customer_gone(customer_id: str) -> bool:
    try:
        return bool(to_dict(gateway.customer_retrieve(customer_id)).get("deleted"))
    except gateway.CustomerMissing:
        return True


def _live_sorted(subscriptions: list[dict[str, Any]], ours: str) -> list[dict[str, Any]]:
    return live_in_keeping_order([s for s in subscriptions if s["status"] in LIVE_STATUSES], ours)


def account_drift(account: CreditAccount) -> tuple[list[Drift], dict[str, Any] | None]:
    """Compare an account with Stripe's view: returns the differences and the subscription."""
    found: list[Drift] = []
    email = account.user.email

    def differs(field: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            found.append(Drift(account.user_id, email, field, ours, theirs))

    if not account.stripe_customer_id:
        # No Stripe customer: nothing can have been paid for. Staff grants are adjustments.
        differs("tier (no Stripe customer)", account.tier, FREE_TIER.key)
        return found, None
    if _customer_gone(account.stripe_customer_id):
        differs("stripe_customer", account.stripe_customer_id, None)
        return found, None
    subscriptions = [to_dict(s) for s in gateway.subscriptions_list(account.stripe_customer_id)]
    live = _live_sorted(subscriptions, account.stripe_subscription_id)
    if len(live) > 1:
        differs("live_subscriptions", 1, len(live))
    current = (
        live[0] if live else max(subscriptions, key=lambda s: s.get("created") or 0, default=None)
    )
    if current is None or current["status"] not in LIVE_STATUSES:
        differs("tier", account.tier, FREE_TIER.key)
        return found, current
    grace_over = (
        current["status"] == SubscriptionStatus.PAST_DUE
        and account.subscription_status == SubscriptionStatus.UNPAID
        and account.stripe_subscription_id == current["id"]
    )
    if grace_over:
        # Our grace ended while Stripe still retries: free here by design; a paid retry
        # restores the plan (invoice.paid). Only a change of subscription would be drift.
        differs("tier", account.tier, FREE_TIER.key)
        return found, current
    state = state_for(account.user, current, observed_at=stripe_time_of(current))
    expected_tier = state.tier or account.tier
    if state.tier and not state.paid:
        expected_tier = account.tier  # an upgrade Stripe has not been paid for yet
    differs("tier", account.tier, expected_tier)
    differs("pending_tier", account.pending_tier, state.pending_tier(expected_tier))
    differs("subscription_status", account.subscription_status, current["status"])
    differs("stripe_subscription_id", account.stripe_subscription_id, current["id"])
    differs("billing_period_end", account.billing_period_end, state.period_end)
    differs("cancel_at_period_end", account.cancel_at_period_end, state.cancel_at_period_end)
    return found, current


def bundle_drift(account: CreditAccount) -> list[Drift]:
    """Every bundle purchase against its Checkout Session and payment at Stripe."""
    found: list[Drift] = []
    purchases = LedgerEntry.objects.filter(user_id=account.user_id, kind=LedgerKind.PURCHASE)
    for purchase in purchases.order_by("pk"):
        if purchase_reversed(purchase):
            continue  # taken back already: nothing left to repair
        problem = _purchase_problem(account, purchase)
        if problem:
            found.append(
                Drift(
                    account.user_id,
                    account.user.email,
                    f"purchase {purchase.source}",
                    purchase.purchased_delta,
                    problem,
                )
            )
    return found


def _purchase_problem(account: CreditAccount, purchase: LedgerEntry) -> str:
    if not account.stripe_customer_id and not purchase.details.get("payment_intent"):
        return "no Stripe customer or payment"
    if purchase.idempotency_key.startswith(auto_topup.KEY_PREFIX):
        return _auto_topup_problem(purchase)
    try:
        session = to_dict(gateway.checkout_session_retrieve(purchase.source))
    except gateway.StripeRequestFailed as exc:
        if exc.extra.get("stripe_code") == "resource_missing":
            return "no such Checkout Session"
        raise
    if session.get("mode") != "payment" or session.get("payment_status") not in PAID:
        return f"session {session.get('status')}/{session.get('payment_status')}"
    credits = 0
    for lookup_key, quantity in checkout_price_lookup_keys(session):
        entry = catalogue.PRICES_BY_LOOKUP_KEY.get(lookup_key)
        if entry is not None and entry.bundle is not None:
            credits += entry.bundle.credits * quantity
    if credits != purchase.purchased_delta:
        return f"session sells {credits} credits"
    payment_intent = object_id(session.get("payment_intent"))
    if session.get("payment_status") == "no_payment_required" and not payment_intent:
        return ""  # a 100% promotion code: nothing to pay, nothing to check
    if not payment_intent or payment_intent != purchase.details.get("payment_intent"):
        return "payment does not match"
    intent = to_dict(gateway.payment_intent_retrieve(payment_intent))
    if intent.get("status") != "succeeded" or intent.get("amount_received", 0) < int(
        session.get("amount_total") or 0
    ):
        return f"payment {intent.get('status')}"
    return ""


def _auto_topup_problem(purchase: LedgerEntry) -> str:
    """An auto top-up is paid by a PaymentIntent of ours (no Checkout): it must have
    succeeded, for this purchase, and for the bundle's price and credits."""
    intent = to_dict(gateway.payment_intent_retrieve(purchase.source))
    bundle = catalogue.BUNDLES.get(str(purchase.details.get("bundle") or ""))
    if bundle is None or bundle.credits != purchase.purchased_delta:
        return "auto top-up of no catalogue bundle"
    if (intent.get("metadata") or {}).get("hrvstr_auto_topup") != purchase.idempotency_key:
        return "payment does not match"
    if intent.get("status") != "succeeded" or intent.get("amount_received", 0) < bundle.price_cents:
        return f"payment {intent.get('status')}"
    return ""


@dataclass(frozen=True)
class Resync:
    before: list[Drift]
    after: list[Drift]

    @property
    def repaired(self) -> bool:
        return bool(self.before) and not self.after

    def summary(self) -> str:
        if not self.before:
            return "in sync"
        changed = "; ".join(f"{d.field}: {d.ours!r} -> {d.stripe!r}" for d in self.before)
        if self.after:
            left = "; ".join(f"{d.field}: {d.ours!r} vs {d.stripe!r}" for d in self.after)
            return f"{changed} (still differs: {left})"
        return changed


def account_repair(*, account: CreditAccount, reason: str = "resync") -> Resync:
    """Apply Stripe's current state to one account, then look again."""
    before, current = account_drift(account)
    if not before:
        return Resync(before, [])
    key = f"{reason}:{uuid.uuid4().hex[:12]}"
    fields = {d.field for d in before}
    if "stripe_customer" in fields:
        customer_unlink(customer_id=account.stripe_customer_id or "", source=reason)
    elif current is not None and account.stripe_customer_id:  # a state implies a customer
        if "live_subscriptions" in fields:
            live = _live_sorted(
                [to_dict(s) for s in gateway.subscriptions_list(account.stripe_customer_id)],
                account.stripe_subscription_id,
            )
            duplicates_end(account.user, kept=live[0], duplicates=live[1:])
        with transaction.atomic():  # read and applied with no webhook worker in between
            customer_serialize(account.stripe_customer_id)
            current = to_dict(gateway.subscription_retrieve(current["id"]))
            subscription_apply(
                current,
                observed_at=stripe_time_of(current),
                idempotency_key=f"{key}:{current['id']}",
                source=reason,
                authoritative=True,
            )
    else:
        subscription_end_here(
            account=account, idempotency_key=f"{key}:none:{account.pk}", source=reason
        )
    account.refresh_from_db()
    after, _ = account_drift(account)
    if after:
        logger.error("resync of %s left drift: %s", account.user.email, after)
    return Resync(before, after)


def account_resync(*, account: CreditAccount, reason: str = "resync") -> str:
    """Bring one account in line with Stripe's current subscription; returns a summary."""
    return account_repair(account=account, reason=reason).summary()


def purchase_reversed(purchase: LedgerEntry) -> bool:
    """Whether a purchase's credits are all claimed back (clawbacks less their reversals)."""
    claimed = 0
    for kind, details in LedgerEntry.objects.filter(
        kind__in=(LedgerKind.CLAWBACK, LedgerKind.CLAWBACK_REVERSAL),
        source=purchase.source,
        user_id=purchase.user_id,
    ).values_list("kind", "details"):
        if kind == LedgerKind.CLAWBACK:
            claimed += details.get("requested", 0)
        else:
            claimed -= details.get("released", 0)
    return claimed >= purchase.purchased_delta

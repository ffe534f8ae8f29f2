"""After a paid plan ended: why, what happened to the credits and the unpaid invoice, and the
way back. Read from our ledger (when and from which plan) and the synced Stripe rows (why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from djstripe import models as djstripe_models

from activities.models import LedgerEntry, LedgerKind
from billing.services import CANCELLED_BY_CUSTOMER
from billing.stripe_data import StripeDict, invoice_subscription_id
from subscriptions import catalogue
from subscriptions.models import CreditAccount
from subscriptions.services import ENDED_STATUSES

CAUSES = {
    "payment_failed": "The payment for it failed and Stripe's retries ran out.",
    "cancelled_by_you": "You cancelled it.",
    "cancelled_elsewhere": (
        "It was cancelled at Stripe (in the billing portal or by our support team)."
    ),
}


@dataclass(frozen=True)
class PlanEnded:
    tier: catalogue.Tier  # the plan that ended
    ended_at: datetime
    cause: str  # a key of CAUSES
    purchased_kept: int
    free_allowance: int
    unpaid_invoice: StripeDict | None  # still open at Stripe
    written_off: bool  # an unpaid invoice Stripe voided or marked uncollectible

    @property
    def cause_text(self) -> str:
        return CAUSES[self.cause]


def _subscription_data(account: CreditAccount) -> dict[str, Any]:
    rows = djstripe_models.Subscription.objects.filter(customer__id=account.stripe_customer_id)
    if account.stripe_subscription_id:
        rows = rows.filter(id=account.stripe_subscription_id)
    data = rows.order_by("-created", "-djstripe_id").values_list("stripe_data", flat=True).first()
    return data or {}


def _cause(subscription: dict[str, Any], account: CreditAccount) -> str:
    details = subscription.get("cancellation_details") or {}
    if details.get("reason") == "payment_failed" or account.subscription_status == "unpaid":
        return "payment_failed"
    if details.get("comment") == CANCELLED_BY_CUSTOMER:
        return "cancelled_by_you"
    return "cancelled_elsewhere"


def plan_ended(account: CreditAccount) -> PlanEnded | None:
    """The end of the account's last paid plan, if it is now on free because of it."""
    if account.tier != catalogue.FREE_TIER.key or account.subscription_status not in ENDED_STATUSES:
        return None
    ended = (
        LedgerEntry.objects.filter(
            user_id=account.user_id, kind=LedgerKind.ALLOWANCE_CHANGE, tier_after="free"
        )
        .order_by("-id")
        .first()
    )
    if ended is None:
        return None
    before = (
        LedgerEntry.objects.filter(user_id=account.user_id, id__lt=ended.id)
        .order_by("-id")
        .values_list("tier_after", flat=True)
        .first()
    )
    tier = catalogue.TIERS.get(before or "")
    if tier is None or not tier.is_paid:
        return None
    subscription = _subscription_data(account)
    invoices = [
        data
        for data in djstripe_models.Invoice.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created", "-djstripe_id")
        .values_list("stripe_data", flat=True)[:10]
        if subscription and invoice_subscription_id(data) == subscription.get("id")
    ]
    unpaid = next((i for i in invoices if i.get("status") == "open"), None)
    return PlanEnded(
        tier=tier,
        ended_at=ended.created_at,
        cause=_cause(subscription, account),
        purchased_kept=account.purchased_balance,
        free_allowance=catalogue.FREE_TIER.monthly_credits,
        unpaid_invoice=unpaid,
        written_off=any(i.get("status") in {"void", "uncollectible"} for i in invoices),
    )

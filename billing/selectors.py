"""Reads of billing state for the SPA and the pages (the subscription, invoices, cards).

They read dj-stripe's mirror of Stripe (kept current by the webhooks), so a page view costs no
Stripe API call; only a subscription the mirror has not seen yet is fetched from Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils.dateparse import parse_datetime
from djstripe import models as djstripe_models

from activities.models import SPENDING_KINDS, LedgerEntry, LedgerKind
from activities.selectors import LedgerDay, ledger_daily
from billing import gateway, previews
from billing.stripe_data import (
    price_entry,
    subscription_period,
    subscription_price,
    timestamp,
    to_dict,
)
from hrvstr.errors import DomainError
from subscriptions import catalogue
from subscriptions.models import CreditAccount, SubscriptionStatus
from subscriptions.selectors import tier_info, unlocks_active
from subscriptions.services import account_get


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def subscription_for_user(*, user: User) -> dict[str, Any] | None:
    """The current subscription in the SPA's field names, or None."""
    account = account_get(user=user)
    if not account.stripe_subscription_id:
        return None
    mirrored = (
        djstripe_models.Subscription.objects.filter(id=account.stripe_subscription_id)
        .values_list("stripe_data", flat=True)
        .first()
    )
    data = mirrored or to_dict(gateway.subscription_retrieve(account.stripe_subscription_id))
    price = subscription_price(data) or {}
    entry = price_entry(price)
    period = subscription_period(data)
    return {
        "id": data["id"],
        "status": data["status"],
        "plan": entry.tier.key if entry and entry.tier else price.get("lookup_key"),
        "amount": price.get("unit_amount"),
        "currency": price.get("currency"),
        "interval": (price.get("recurring") or {}).get("interval"),
        "currentPeriodStart": _iso(period[0]) if period else None,
        "currentPeriodEnd": _iso(period[1]) if period else None,
        "cancelAtPeriodEnd": bool(data.get("cancel_at_period_end")),
        "pendingTier": account.pending_tier or None,
    }


def invoices_recent(*, user: User, limit: int = 10) -> list[dict[str, Any]]:
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    invoices = list(
        djstripe_models.Invoice.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created")
        .values_list("stripe_data", flat=True)[:limit]
    )
    return [
        {
            "id": invoice["id"],
            "amount": invoice.get("amount_paid") or invoice.get("amount_due") or 0,
            "currency": invoice.get("currency"),
            "status": invoice.get("status"),
            "date": _iso(timestamp(invoice.get("created"))),
            "description": invoice.get("description")
            or ", ".join(
                line.get("description") or ""
                for line in (invoice.get("lines") or {}).get("data", [])[:3]
            ),
            "downloadUrl": invoice.get("hosted_invoice_url") or invoice.get("invoice_pdf"),
        }
        for invoice in invoices
    ]


def payment_methods(*, user: User) -> list[dict[str, Any]]:
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    methods = list(
        djstripe_models.PaymentMethod.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created")
        .values_list("stripe_data", flat=True)[:10]
    )
    customer = (
        djstripe_models.Customer.objects.filter(id=account.stripe_customer_id)
        .values_list("stripe_data", flat=True)
        .first()
        or {}
    )
    default = (customer.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(default, dict):
        default = default.get("id")
    return [
        {
            "id": method["id"],
            "type": method.get("type"),
            "brand": (method.get("card") or {}).get("brand"),
            "last4": (method.get("card") or {}).get("last4"),
            "expMonth": (method.get("card") or {}).get("exp_month"),
            "expYear": (method.get("card") or {}).get("exp_year"),
            # Stripe's invoice default; a lone card is the one that pays either way.
            "isDefault": method["id"] == default or (not default and len(methods) == 1),
        }
        for method in methods
    ]


# --- what the pricing and billing pages show ---------------------------------------------------
# Each composes the domain selectors; nothing writes (except ``account_get``'s own period roll,
# the same one every API read does).


def account_for(*, user: User, now: datetime) -> CreditAccount:
    return account_get(user=user, now=now)


@dataclass(frozen=True)
class PlanCard:
    tier: catalogue.Tier
    is_current: bool
    current_interval: str  # the subscriber's interval on this tier, else ""
    action: str  # "checkout", "change", "settle" (past due: pay first) or "" (free)
    limits: list[tuple[str, int | None]]


def pricing_cards(*, account: CreditAccount | None) -> list[PlanCard]:
    """The four tiers from the catalogue, with what the visitor can do about each."""
    subscribed = account is not None and account.has_live_subscription
    past_due = account is not None and account.subscription_status == SubscriptionStatus.PAST_DUE
    cards = []
    for tier in catalogue.TIERS.values():
        is_current = account is not None and account.tier == tier.key
        # Free needs no purchase; a subscriber changes plan instead of a second Checkout.
        action = ("change" if subscribed else "checkout") if tier.is_paid else ""
        if action and past_due:
            action = "settle"  # pay the failed invoice first (the banner's "Pay now")
        cards.append(
            PlanCard(
                tier=tier,
                is_current=is_current,
                current_interval=(account.billing_interval if is_current and account else "") or "",
                action=action,
                limits=[(name.replace("_", " "), value) for name, value in tier.limits.items()],
            )
        )
    return cards


def _time_left(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min" if minutes else "less than a minute"


def billing_overview(*, user: User, now: datetime) -> dict[str, Any]:
    """Everything /billing/ shows: the tier, its status, credits, unlocks and invoices."""
    account = account_for(user=user, now=now)
    info = tier_info(account=account, now=now)
    tier = catalogue.TIERS[account.tier]
    invoices: list[dict[str, Any]] = []
    invoices_error = ""
    try:
        invoices = invoices_recent(user=user, limit=10)
    except DomainError as exc:
        # The rest of the page does not need Stripe: show it, and say what is missing.
        invoices_error = exc.message
    for invoice in invoices:
        if isinstance(invoice.get("date"), str):
            invoice["date"] = parse_datetime(invoice["date"])
    unlocks = [
        {
            "name": catalogue.COMPONENTS[u.component].name
            if u.component in catalogue.COMPONENTS
            else u.component,
            "expires_at": u.expires_at,
            "time_left": _time_left(u.expires_at - now),
            "cost": u.cost,
        }
        for u in unlocks_active(user_id=user.pk, now=now)
    ]
    live = account.has_live_subscription
    next_payment = None
    next_payment_error = ""
    try:
        next_payment = previews.next_payment_preview(account=account)
    except DomainError as exc:
        next_payment_error = exc.message
    return {
        "account": account,
        "tier": tier,
        "info": info,
        "credits": info["credits"],
        "live_subscription": live,
        "in_grace": account.in_grace(now),
        "renews_on": account.billing_period_end or account.period_end,
        "pending_tier": catalogue.TIERS.get(account.pending_tier) if account.pending_tier else None,
        "bundles": [bundle for bundle in catalogue.BUNDLES.values() if tier.allows(bundle)],
        "other_tiers": [t for t in catalogue.TIERS.values() if t.is_paid and t.key != tier.key],
        # Tier to tier (the buttons name no interval): a higher tier is an upgrade.
        "upgrade_tiers": [t.key for t in catalogue.TIERS.values() if not tier.at_least(t)],
        "unlocks": unlocks,
        "invoices": invoices,
        "invoices_error": invoices_error,
        "has_customer": bool(account.stripe_customer_id),
        "next_payment": next_payment,
        "next_payment_error": next_payment_error,
    }


def checkout_progress(
    *, account: CreditAccount, started: dict[str, Any], session_id: str
) -> dict[str, Any]:
    """Has the webhook for the Checkout this browser started landed yet?

    ``started`` is what the account looked like when the checkout began (kept in the session):
    a plan has landed once the tier changed, a bundle once the purchased credits did. With no
    record (another browser, an old link) the page cannot know, so it only waits and polls.
    """
    if started.get("id") != session_id:
        started = {}
    kind = started.get("kind", "unknown")
    if kind == "bundle":
        activated = account.purchased_balance != started.get("purchased")
    elif kind == "plan":
        activated = account.tier != started.get("tier")
    else:
        activated = False
    return {
        "account": account,
        "tier": catalogue.TIERS[account.tier],
        "activated": activated,
        "baseline": {
            "kind": kind,
            "tier": started.get("tier", account.tier),
            "purchased": started.get("purchased", account.purchased_balance),
        },
        "tier_names": {t.key: t.name for t in catalogue.TIERS.values()},
    }


def checkout_landed(*, session_id: str) -> bool:
    """Whether the webhooks of a paid Checkout Session have done their work here: the bundle's
    credits are on the ledger, or the subscription is on an account."""
    if LedgerEntry.objects.filter(source=session_id, kind=LedgerKind.PURCHASE).exists():
        return True
    session = (
        djstripe_models.Session.objects.filter(id=session_id)
        .values_list("stripe_data", flat=True)
        .first()
        or {}
    )
    subscription = session.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return bool(subscription) and (
        CreditAccount.objects.filter(stripe_subscription_id=subscription)
        .exclude(subscription_status=SubscriptionStatus.NONE)
        .exists()
    )


def plan_change_preview(
    *, account: CreditAccount, tier: str, interval: catalogue.Interval
) -> dict[str, Any]:
    """What switching to ``tier``/``interval`` means, told before the customer confirms.

    Mirrors billing.services.subscription_change_plan: a higher tier (or a yearly plan for a
    monthly one) is invoiced now (prorated) and applies once paid; a lower tier (or a shorter
    interval) is scheduled in Stripe for the renewal.
    """
    current = catalogue.TIERS[account.tier]
    target = catalogue.TIERS[tier]
    kind = catalogue.plan_change_kind(
        catalogue.Plan(current, account.billing_interval), catalogue.Plan(target, interval)
    )
    same = kind == "same"
    immediate = kind == "upgrade"
    quote = None
    quote_error = ""
    if account.has_live_subscription and not same:
        try:
            quote = previews.plan_change_quote(user=account.user, tier=tier, interval=interval)
        except DomainError as exc:
            # The page still explains the change; the figures wait for Stripe (and the
            # change itself is refused while Stripe is unreachable anyway).
            quote_error = exc.message
    return {
        "account": account,
        "current": current,
        "target": target,
        "interval": interval,
        "price_cents": target.price_cents(interval),
        "same": same,
        "immediate": immediate,
        "renews_on": account.billing_period_end or account.period_end,
        "live_subscription": account.has_live_subscription,
        "quote": quote,
        "quote_error": quote_error,
    }


def plan_change_outcome(*, user: User, tier: str) -> tuple[int, str]:
    """What the page says right after a plan change: the account already holds what Stripe
    answered (the change's result was applied at once). Read afresh: the request's user
    carries the account as it was before the change."""
    target = catalogue.TIERS[tier]
    account = CreditAccount.objects.get(user=user)
    if account.tier == tier:
        return messages.SUCCESS, f"You are now on {target.name}."
    if account.pending_tier == tier:
        ends = account.billing_period_end or account.period_end
        return messages.SUCCESS, f"You switch to {target.name} on {ends:%-d %b %Y}."
    current = catalogue.TIERS[account.tier].name
    return (
        messages.WARNING,
        f"Stripe has not been paid for {target.name} yet, so you keep {current}. "
        "Check your card under Manage billing.",
    )


# --- the support staff's billing dashboard (/admin/dashboard/) ----------------------------------

# Revenue that is coming in: trials have not paid yet and past-due accounts are not paying.
MRR_STATUSES = (SubscriptionStatus.ACTIVE,)


def accounts_per_tier() -> list[dict[str, Any]]:
    counts = dict(
        CreditAccount.objects.values_list("tier").annotate(n=Count("id")).values_list("tier", "n")
    )
    return [{"tier": tier, "count": counts.get(tier.key, 0)} for tier in catalogue.TIERS.values()]


def mrr_cents() -> dict[str, Any]:
    """Monthly recurring revenue in cents: the catalogue prices of active subscriptions (a
    yearly price counts a twelfth, rounded down). Unknown lookup keys are counted, not priced."""
    rows = (
        CreditAccount.objects.filter(subscription_status__in=MRR_STATUSES)
        .exclude(stripe_subscription_id="")
        .values_list("stripe_price_lookup_key")
        .annotate(n=Count("id"))
    )
    total = 0
    unpriced = 0
    by_key = []
    for lookup_key, count in rows:
        entry = catalogue.PRICES_BY_LOOKUP_KEY.get(lookup_key)
        if entry is None or entry.interval is None:
            unpriced += count
            continue
        monthly = entry.amount_cents if entry.interval == "month" else entry.amount_cents // 12
        total += monthly * count
        by_key.append({"lookup_key": lookup_key, "count": count, "mrr_cents": monthly * count})
    by_key.sort(key=lambda row: row["lookup_key"])
    return {"total_cents": total, "by_key": by_key, "unpriced": unpriced}


def failed_webhook_events(
    *, limit: int = 20
) -> tuple[int, list[djstripe_models.WebhookEventTrigger]]:
    failed = djstripe_models.WebhookEventTrigger.objects.filter(Q(valid=False) | Q(processed=False))
    return failed.count(), list(failed.select_related("event").order_by("-created")[:limit])


def accounts_in_grace(*, now: datetime) -> list[CreditAccount]:
    return list(
        CreditAccount.objects.in_grace(now).select_related("user").order_by("grace_until")[:50]
    )


def credits_daily(*, now: datetime, days: int = 30) -> list[LedgerDay]:
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return ledger_daily(since=since, spending_kinds=SPENDING_KINDS)


def support_dashboard(*, now: datetime) -> dict[str, Any]:
    failed_count, failed = failed_webhook_events()
    return {
        "tiers": accounts_per_tier(),
        "accounts_total": CreditAccount.objects.count(),
        "mrr": mrr_cents(),
        "daily": credits_daily(now=now),
        "failed_count": failed_count,
        "failed": failed,
        "grace": accounts_in_grace(now=now),
    }

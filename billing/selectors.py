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
from billing import gateway, plan_end, previews, sync
from billing.stripe_data import (
    invoice_line_price_id,
    object_id,
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


def mirrored(model: type[djstripe_models.StripeModel], stripe_id: str) -> dict[str, Any]:
    """dj-stripe's copy of one Stripe object as Stripe sent it ({} if it has none)."""
    data = model.objects.filter(id=stripe_id).values_list("stripe_data", flat=True).first()
    return data or {}


def subscription_for_user(*, user: User) -> dict[str, Any] | None:
    """The current subscription in the SPA's field names, or None."""
    account = account_get(user=user)
    if not account.stripe_subscription_id:
        return None
    data = mirrored(djstripe_models.Subscription, account.stripe_subscription_id) or to_dict(
        gateway.subscription_retrieve(account.stripe_subscription_id)
    )
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


def entries_by_price_id(invoices: list[dict[str, Any]]) -> dict[str, catalogue.PriceEntry]:
    price_ids = {
        line_price
        for invoice in invoices
        for line in (invoice.get("lines") or {}).get("data", [])
        if (line_price := invoice_line_price_id(line))
    }
    found: dict[str, catalogue.PriceEntry] = {}
    for price_id in price_ids:
        try:
            entry = sync.price_entry_for_id(price_id)
        except DomainError:  # Stripe unreachable: Stripe's own line text will do
            entry = None
        if entry is not None:
            found[price_id] = entry
    return found


def _line_is_proration(line: dict[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration"))


def entry_label(entry: catalogue.PriceEntry) -> str:
    """What a catalogue price is called on a customer's invoice: "Pro plan, monthly",
    "250 credits (credit bundle)"."""
    if entry.tier is not None:
        return f"{entry.tier.name} plan, {INTERVAL_WORDS.get(entry.interval or '', '')}".rstrip(
            ", "
        )
    if entry.bundle is not None:
        return f"{entry.bundle.name} (credit bundle)"
    return entry.product_name


INTERVAL_WORDS = {"month": "monthly", "year": "yearly"}


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    amount: int  # cents, negative for a credit
    period_start: datetime | None
    period_end: datetime | None
    proration: bool


def invoice_lines(
    invoice: dict[str, Any], entries: dict[str, catalogue.PriceEntry]
) -> list[InvoiceLine]:
    """The invoice's lines said with our catalogue's names; prorations said as such. A line
    whose price is not ours keeps Stripe's text."""
    lines = []
    for line in (invoice.get("lines") or {}).get("data", []):
        entry = entries.get(invoice_line_price_id(line) or "")
        proration = _line_is_proration(line)
        amount = int(line.get("amount") or 0)
        if entry is None:
            description = line.get("description") or "Invoice item"
        elif proration:
            name = entry_label(entry)
            description = (
                f"Unused time on {name} (credit for the rest of the period)"
                if amount < 0
                else f"Remaining time on {name} (prorated for the rest of the period)"
            )
        else:
            quantity = int(line.get("quantity") or 1)
            description = (
                f"{quantity} \N{MULTIPLICATION SIGN} " if quantity > 1 else ""
            ) + entry_label(entry)
        period = line.get("period") or {}
        start, end = period.get("start"), period.get("end")
        lines.append(
            InvoiceLine(
                description=description,
                amount=amount,
                # A one-off purchase's "period" is its moment: no period to show.
                period_start=timestamp(start) if start != end else None,
                period_end=timestamp(end) if start != end else None,
                proration=proration,
            )
        )
    return lines


def invoice_status_text(invoice: dict[str, Any]) -> str:
    """The invoice's status, explained for its customer."""
    status = invoice.get("status") or ""
    if status == "paid":
        paid_at = timestamp((invoice.get("status_transitions") or {}).get("paid_at"))
        return f"Paid on {paid_at:%-d %b %Y}" if paid_at else "Paid"
    if status == "open":
        retry = timestamp(invoice.get("next_payment_attempt"))
        if invoice.get("attempted") and retry:
            return f"Open — payment failed, Stripe retries on {retry:%-d %b %Y}"
        if invoice.get("attempted"):
            return "Open — payment failed and Stripe will not retry: pay it on the invoice page"
        due = timestamp(invoice.get("due_date"))
        return f"Open — due on {due:%-d %b %Y}" if due else "Open — awaiting payment"
    if status == "void":
        return "Void — cancelled, nothing to pay"
    if status == "uncollectible":
        return "Uncollectible — Stripe stopped collecting it after the failed payments"
    if status == "draft":
        return "Draft — not issued yet"
    return status.capitalize()


def invoices_recent(*, user: User, limit: int = 10) -> list[dict[str, Any]]:
    """The customer's latest invoices (plans and bundle receipts), newest first, with lines in
    our catalogue's words. The SPA reads id, amount, currency, status, date, description and
    downloadUrl; the billing page reads the rest."""
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    invoices = list(
        djstripe_models.Invoice.objects.filter(customer__id=account.stripe_customer_id)
        # Stripe's times are whole seconds: within one, the later mirrored is the later.
        .order_by("-created", "-pk")
        .values_list("stripe_data", flat=True)[:limit]
    )
    entries = entries_by_price_id(invoices)
    result = []
    for invoice in invoices:
        lines = invoice_lines(invoice, entries)
        result.append(
            {
                "id": invoice["id"],
                "number": invoice.get("number"),
                "amount": invoice.get("amount_paid") or invoice.get("amount_due") or 0,
                "currency": invoice.get("currency"),
                "status": invoice.get("status"),
                "statusText": invoice_status_text(invoice),
                "date": _iso(timestamp(invoice.get("created"))),
                "description": invoice.get("description")
                or ", ".join(line.description for line in lines[:3]),
                "downloadUrl": invoice.get("hosted_invoice_url") or invoice.get("invoice_pdf"),
                "hostedUrl": invoice.get("hosted_invoice_url"),
                "pdfUrl": invoice.get("invoice_pdf"),
                "isReceipt": _is_bundle_receipt(invoice, entries),
                "lines": lines,
            }
        )
    return result


def _is_bundle_receipt(invoice: dict[str, Any], entries: dict[str, catalogue.PriceEntry]) -> bool:
    return any(
        (entry := entries.get(invoice_line_price_id(line) or "")) is not None
        and entry.bundle is not None
        for line in (invoice.get("lines") or {}).get("data", [])
    )


def _card(method: dict[str, Any]) -> dict[str, Any]:
    card = method.get("card") or {}
    return {
        "id": method["id"],
        "type": method.get("type"),
        "brand": card.get("brand"),
        "last4": card.get("last4"),
        "expMonth": card.get("exp_month"),
        "expYear": card.get("exp_year"),
    }


def _default_payment_method_id(customer_id: str, subscription_id: str) -> str | None:
    """The card Stripe charges: the customer's invoice default, else the subscription's."""
    customer = mirrored(djstripe_models.Customer, customer_id)
    default = object_id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if default or not subscription_id:
        return default
    subscription = mirrored(djstripe_models.Subscription, subscription_id)
    return object_id(subscription.get("default_payment_method"))


def payment_methods(*, user: User) -> list[dict[str, Any]]:
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    methods = list(
        djstripe_models.PaymentMethod.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created", "-djstripe_id")
        .values_list("stripe_data", flat=True)[:10]
    )
    default = _default_payment_method_id(account.stripe_customer_id, account.stripe_subscription_id)
    return [
        {
            **_card(method),
            # Stripe's default; a lone card is the one that pays either way.
            "isDefault": method["id"] == default or (not default and len(methods) == 1),
        }
        for method in methods
    ]


def card_on_file(*, user: User) -> dict[str, Any] | None:
    """The card Stripe charges next (brand, last 4, expiry), or None."""
    return next((m for m in payment_methods(user=user) if m["isDefault"]), None)


def billing_details(*, user: User) -> dict[str, Any]:
    """The e-mail Stripe sends receipts to and the customer's tax ids, from the mirror."""
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return {"email": user.email, "tax_ids": []}
    customer = mirrored(djstripe_models.Customer, account.stripe_customer_id)
    tax_ids = [
        {
            "id": data["id"],
            "type": data.get("type"),
            "value": data.get("value"),
            "verification": (data.get("verification") or {}).get("status"),
        }
        for data in djstripe_models.TaxId.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("created")
        .values_list("stripe_data", flat=True)
    ]
    return {"email": customer.get("email") or user.email, "tax_ids": tax_ids}


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
    card = None
    if account.stripe_customer_id:
        card = card_on_file(user=user)
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
        "card": card,
        "plan_ended": plan_end.plan_ended(account),
        "details": billing_details(user=user),
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
    session = mirrored(djstripe_models.Session, session_id)
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

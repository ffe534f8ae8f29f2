"""What users and staff ask of Stripe: customers, Checkout, the portal and plan changes.

Tier and credit changes are never decided here: Stripe decides, and ``billing.sync`` applies
its answer through the subscriptions rules, whoever started the change (our pages, the SPA,
the Stripe portal or the dashboard). After our own call to Stripe returns, the subscription it
returned goes through that same path at once (``returned_subscription_apply``), so the next
page is right; the signed webhook that follows finds nothing left to change.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models
from djstripe.models import WebhookEventTrigger

from activities.models import Activity
from billing import gateway
from billing.catalogue_sync import portal_configuration_find, portal_configuration_problems
from billing.customer_order import customer_of, customer_serialize
from billing.reconcile import account_resync
from billing.stripe_data import (
    StripeDict,
    object_id,
    price_entry,
    subscription_item_id,
    subscription_period,
    subscription_price,
    to_dict,
)
from billing.sync import (
    CUSTOMER_GONE,
    customer_unlink,
    price_entry_for_id,
    stripe_time_of,
    subscription_apply,
)
from hrvstr.errors import DomainError
from subscriptions import catalogue
from subscriptions.errors import require_tier
from subscriptions.models import CreditAccount
from subscriptions.services import LIVE_STATUSES, account_get, customer_link

logger = logging.getLogger(__name__)
PRICE_CACHE_SECONDS = 600


class AlreadySubscribed(DomainError):
    code = "already_subscribed"
    status = 409
    message = "You already have a subscription: change your plan instead"


class BundleRequiresPaidTier(DomainError):
    code = "bundle_requires_paid_tier"
    status = 403
    message = "Credit bundles are available on paid plans"


class NoStripeCustomer(DomainError):
    code = "no_stripe_customer"
    status = 400
    message = "You have no billing account yet: choose a plan first"


class NoSubscription(DomainError):
    code = "no_subscription"
    status = 400
    message = "You have no active subscription"


class UnknownPlan(DomainError):
    code = "unknown_plan"
    status = 400
    message = "Unknown plan"


class PortalNotConfigured(DomainError):
    code = "portal_not_configured"
    status = 503
    message = "The billing portal is not set up yet (run manage.py stripe_sync_catalogue)"


class PriceMissing(DomainError):
    code = "price_missing"
    status = 503
    message = "This plan is not set up in Stripe yet (run manage.py stripe_sync_catalogue)"


@dataclass(frozen=True)
class CheckoutStart:
    url: str
    session_id: str


def price_id_for(lookup_key: str) -> str:
    """The Stripe price id behind a catalogue lookup key (cached: prices rarely change)."""
    cache_key = f"stripe-price:{'live' if gateway.live_mode() else 'test'}:{lookup_key}"
    price_id = cache.get(cache_key)
    if price_id is None:
        price = gateway.prices_by_lookup_keys([lookup_key]).get(lookup_key)
        if price is None:
            raise PriceMissing(lookup_key=lookup_key)
        price_id = price.id
        cache.set(cache_key, price_id, PRICE_CACHE_SECONDS)
    return price_id


class RedirectNotAllowed(DomainError):
    code = "redirect_not_allowed"
    status = 400
    message = "Return URLs must be on this site or on an origin in CORS_ALLOWED_ORIGINS"


def checkout_price_entry(*, price: str) -> catalogue.PriceEntry:
    """The catalogue price named by a lookup key, or by a Stripe price id whose lookup key is
    one (dj-stripe's mirror first, refreshed from Stripe when it does not know the id)."""
    entry = catalogue.PRICES_BY_LOOKUP_KEY.get(price)
    if entry is None and price.startswith("price_"):
        entry = price_entry_for_id(price)
    if entry is None:
        raise UnknownPlan("Not a catalogue price", priceId=price)
    return entry


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def checkout_return_target(*, url: str) -> str:
    """The SPA page a Checkout return goes on to, checked again (the return page is public)."""
    if not url:
        raise RedirectNotAllowed(url=url)
    return _return_url(url, "")


def _return_url(url: str | None, default: str) -> str:
    """A Checkout return URL: ours, or one of the SPA origins we trust (no open redirect)."""
    if not url:
        return default
    allowed = {_origin(settings.SITE_URL), *(_origin(o) for o in settings.CORS_ALLOWED_ORIGINS)}
    if urlsplit(url).scheme not in {"http", "https"} or _origin(url) not in allowed:
        raise RedirectNotAllowed(url=url)
    return url


def customer_ensure(*, user: User) -> str:
    """The user's one Stripe customer, created on first need.

    No lock is held across the Stripe call: the account row locked while Stripe answered (up
    to the SDK's timeout) made the same user's spends wait and fail "busy". Two checkouts
    starting at once both ask Stripe with the same idempotency key (derived from the user), so
    Stripe answers both with one customer; the conditional write keeps the first id stored,
    and a retry after a crash finds the same customer too.
    """
    account = account_get(user=user)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    # A customer deleted at Stripe leaves a trace in the feed; counting them makes the key of
    # the next creation new (Stripe would replay the dead customer's creation).
    gone = Activity.objects.filter(user=user, dedupe_key__startswith=CUSTOMER_GONE).count()
    customer = gateway.customer_create(
        email=user.email,
        name=user.get_full_name(),
        metadata={"hrvstr_user_id": str(user.pk), "djstripe_subscriber": str(user.pk)},
        idempotency_key=f"customer:{user.pk}" + (f":{gone}" if gone else ""),
    )
    # Mirrored now from Stripe's answer: every event about this customer would otherwise fetch
    # it again first (dj-stripe stores an object's customer before the object).
    djstripe_models.Customer.sync_from_stripe_data(customer)
    stored = customer_link(user_id=user.pk, customer_id=customer.id)
    if stored != customer.id:
        # Only if the key expired between two attempts (24 h): keep the first, say so.
        logger.warning(
            "user %s: Stripe customer %s not used, %s kept", user.pk, customer.id, stored
        )
    return stored


def plan_entry(tier: str, interval: str) -> catalogue.PriceEntry:
    tier_spec = catalogue.TIERS.get(tier)
    if tier_spec is None or not tier_spec.is_paid or interval not in catalogue.INTERVALS:
        raise UnknownPlan(tier=tier, interval=interval, available=_paid_tiers())
    return catalogue.PRICES_BY_LOOKUP_KEY[tier_spec.lookup_key(interval)]


def _paid_tiers() -> list[str]:
    return [tier.key for tier in catalogue.TIERS.values() if tier.is_paid]


def checkout_session_create(
    *,
    user: User,
    tier: str | None = None,
    interval: str = "month",
    bundle: str | None = None,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> CheckoutStart:
    """Start Stripe Checkout for a plan (subscription mode) or a credit bundle (payment mode).

    ``success_url``/``cancel_url`` (the SPA's own pages) must be on this site or a trusted SPA
    origin; by default the customer comes back to our billing pages.
    """
    if not gateway.is_configured():
        raise gateway.StripeNotConfigured()
    site = settings.SITE_URL
    if success_url:
        # Through our return page, which waits (briefly) for the webhook, so the SPA's page
        # shows the new plan or credits when it loads (it reads them once, then every 2 min).
        next_url = quote(_return_url(success_url, ""), safe="")
        success_url = f"{site}/billing/return/?session_id={{CHECKOUT_SESSION_ID}}&next={next_url}"
    else:
        success_url = f"{site}/billing/success/?session_id={{CHECKOUT_SESSION_ID}}"
    cancel_url = _return_url(cancel_url, f"{site}/billing/cancel/")
    account = account_get(user=user)
    metadata = {"hrvstr_user_id": str(user.pk)}
    if bundle is not None:
        bundle_spec = catalogue.BUNDLES.get(bundle)
        if bundle_spec is None:
            raise UnknownPlan(
                "Unknown credit bundle", bundle=bundle, available=list(catalogue.BUNDLES)
            )
        require_tier(account.tier, bundle_spec, error=BundleRequiresPaidTier)
        lookup_key = bundle_spec.lookup_key
        mode_params: dict[str, object] = {
            "mode": "payment",
            "payment_intent_data": {"metadata": metadata | {"hrvstr_bundle": bundle}},
            # A paid invoice for the bundle (Stripe's receipt, with a number and a PDF), so
            # the purchase is in the customer's invoice list like the plan's invoices.
            "invoice_creation": {
                "enabled": True,
                "invoice_data": {"metadata": metadata | {"hrvstr_bundle": bundle}},
            },
        }
    else:
        entry = plan_entry(tier or "", interval)
        if account.has_live_subscription and _still_live_at_stripe(account):
            raise AlreadySubscribed(action="change_plan", tier=account.tier)
        lookup_key = entry.lookup_key
        mode_params = {"mode": "subscription", "subscription_data": {"metadata": metadata}}
    params = dict(
        line_items=[{"price": price_id_for(lookup_key), "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        client_reference_id=str(user.pk),
        metadata=metadata | {"hrvstr_lookup_key": lookup_key},
        # As the original HRVSTR: customers may enter a promotion code. Credits come from the
        # catalogue, never from what was paid, so a coupon changes the price only.
        allow_promotion_codes=True,
        **mode_params,
    )
    try:
        session = _checkout_for_customer(user, customer_ensure(user=user), params)
    except gateway.CustomerMissing:
        # Deleted at Stripe and the webhook not here (or lost): forget it, make a new one.
        customer_unlink(
            customer_id=account_get(user=user).stripe_customer_id or "", source="checkout"
        )
        session = _checkout_for_customer(user, customer_ensure(user=user), params)
    return CheckoutStart(url=session.url, session_id=session.id)


def _checkout_for_customer(user: User, customer_id: str, params: dict[str, Any]) -> Any:
    """Create the session; a subscription Checkout first expires the customer's other open
    subscription sessions, so two tabs cannot both be paid into two subscriptions (a race
    that slips through anyway is ended by ``billing.sync.kept_subscription``)."""
    if params["mode"] == "subscription":
        for other in gateway.checkout_sessions_open(customer_id):
            if other.mode != "subscription":
                continue
            try:
                gateway.checkout_session_expire(other.id)
            except gateway.StripeRequestFailed:
                logger.info("checkout %s: no longer open, not expired", other.id)
    return gateway.checkout_session_create(customer=customer_id, **params)


def _still_live_at_stripe(account: CreditAccount) -> bool:
    """Whether the subscription our row calls live is live at Stripe too.

    A cancellation or a deleted customer whose webhook is late (or lost) would otherwise lock
    the user out of Checkout; Stripe's word wins and the account is resynced on the spot.
    """
    try:
        data = to_dict(gateway.subscription_retrieve(account.stripe_subscription_id))
    except gateway.StripeRequestFailed as exc:
        if exc.extra.get("stripe_code") != "resource_missing":
            raise
        data = {}
    if data.get("status") in LIVE_STATUSES:
        return True
    account_resync(account=account, reason="checkout")
    return False


def portal_session_create(*, user: User, return_url: str | None = None) -> str:
    """A Stripe customer portal link (cards, invoices, plan and cancellation)."""
    account = account_get(user=user)
    if not account.stripe_customer_id:
        raise NoStripeCustomer(action="redirect_to_pricing")
    try:
        session = gateway.portal_session_create(
            customer_id=account.stripe_customer_id,
            return_url=return_url or f"{settings.SITE_URL}/billing/",
            configuration=portal_configuration_id(),
        )
    except gateway.CustomerMissing:
        customer_unlink(customer_id=account.stripe_customer_id, source="portal")
        raise NoStripeCustomer(action="redirect_to_pricing") from None
    return session.url


def portal_configuration_id() -> str:
    """The id of our billing-portal configuration (made by ``stripe_sync_catalogue``).

    The portal never opens with Stripe's default configuration: that one lets a customer
    switch plans without invoicing the difference.
    """
    cache_key = f"stripe-portal-config:{'live' if gateway.live_mode() else 'test'}"
    config_id = cache.get(cache_key)
    if config_id is None:
        config = portal_configuration_find()
        problems = portal_configuration_problems(config)
        if config is None or problems:
            # Changed in the dashboard since stripe_sync_catalogue made it: opening it could
            # hand out unbilled plan switches again, so it stays shut until restored.
            logger.error("billing portal refused: %s", "; ".join(problems))
            raise PortalNotConfigured(problems=problems)
        config_id = config["id"]
        cache.set(cache_key, config_id, PRICE_CACHE_SECONDS)
    return config_id


def live_subscription(user: User) -> dict[str, Any]:
    """The user's live subscription as Stripe has it now.

    Our row can be a webhook behind Stripe (a cancel or a failed renewal that ended it is still
    on its way): asking Stripe first turns that race into ``no_subscription`` (400) instead of
    a Stripe refusal answered as 502.
    """
    account = account_get(user=user)
    if not account.has_live_subscription:
        raise NoSubscription()
    data = to_dict(gateway.subscription_retrieve(account.stripe_subscription_id))
    if data.get("status") not in LIVE_STATUSES:
        raise NoSubscription()
    return data


def _live_subscription_id(user: User) -> str:
    return str(live_subscription(user)["id"])


def request_key_for(action: str, subscription_id: str) -> str:
    """A key per user request, so the SDK's network retries of it are replayed by Stripe.

    Not derived from state: cancel, resume, cancel again (before the webhooks land) are three
    requests, and a state-derived key would make Stripe replay the first for the third.
    Repeating the same change is harmless anyway (the target state is checked first or is
    already Stripe's).
    """
    return f"{action}:{subscription_id}:{uuid.uuid4().hex}"


def change_applies_now(current: catalogue.PriceEntry | None, target: catalogue.PriceEntry) -> bool:
    """Upgrades (a higher tier, or a yearly plan for a monthly one) apply now, once paid;
    downgrades (a lower tier, a shorter interval) at the period end, as the portal does."""
    if current is None or current.tier is None or target.tier is None:
        return True
    kind = catalogue.plan_change_kind(
        catalogue.Plan(current.tier, current.interval or ""),
        catalogue.Plan(target.tier, target.interval or ""),
    )
    return kind == "upgrade"


def returned_subscription_apply(subscription: Any, *, request_key: str) -> None:
    """Apply the subscription Stripe just returned to our call, by the webhook's rules.

    The page after the POST then shows what Stripe answered without waiting for the webhook.
    It is Stripe's current state (``authoritative``); the webhook that follows re-reads the
    same state and finds nothing left to change (no second ledger row or feed line). The
    rules are the webhook's own: an upgrade counts only once Stripe has switched the price
    and been paid. Stripe is read (payment, schedule) before the account is locked.
    """
    data = to_dict(subscription)
    with transaction.atomic():
        # After any webhook worker applying this customer's state: a renewal that Stripe made
        # (and a worker applied) between our call and now must not be undone by this answer.
        customer_serialize(customer_of(data))
        if _answer_outdated(data):
            logger.info("subscription %s: our answer is older than the account", data["id"])
            return
        subscription_apply(
            data,
            observed_at=stripe_time_of(data),
            idempotency_key=f"sub:{request_key}"[:100],
            source=request_key.split(":", 1)[0],
            authoritative=True,
        )


def _answer_outdated(subscription: StripeDict) -> bool:
    """Whether the account already shows a later billing period of this subscription (same
    interval) than Stripe's answer to our call does: the answer was overtaken on its way."""
    period = subscription_period(subscription)
    recurring = (subscription_price(subscription) or {}).get("recurring") or {}
    if period is None or subscription.get("status") not in LIVE_STATUSES:
        return False
    return CreditAccount.objects.filter(
        stripe_subscription_id=subscription["id"],
        billing_interval=recurring.get("interval"),
        billing_period_end__gt=period[1],
    ).exists()


class PreviewOutdated(DomainError):
    code = "preview_outdated"
    status = 409
    message = "Prices were worked out a while ago: review the change again"


PREVIEW_VALID_SECONDS = 3600


def proration_time(*, proration_date: int | None, now: datetime) -> int | None:
    """The proration time of a change: the one its preview used (so the charge is the
    preview's), if that preview is recent; None without one: Stripe prorates at its own now
    (our clock may be a little off Stripe's, and a date outside the period is refused)."""
    current = int(now.timestamp())
    if proration_date is None:
        return None
    if not current - PREVIEW_VALID_SECONDS <= proration_date <= current + 60:
        raise PreviewOutdated(proration_date=proration_date)
    return proration_date


def change_details(
    data: StripeDict, entry: catalogue.PriceEntry, *, applies_now: bool, proration_date: int | None
) -> dict[str, Any]:
    """The subscription change Stripe makes (and previews): an upgrade invoiced now, prorated
    at ``proration_date``; a downgrade at the period end, without proration."""
    details: dict[str, Any] = {
        "items": [{"id": subscription_item_id(data), "price": price_id_for(entry.lookup_key)}],
        "proration_behavior": "always_invoice" if applies_now else "none",
    }
    if applies_now and proration_date is not None:
        details["proration_date"] = proration_date
    return details


def subscription_change_plan(
    *, user: User, tier: str, interval: str, proration_date: int | None = None
) -> None:
    """Move the subscription to another plan, the way Stripe bills it.

    An upgrade is prorated and invoiced now with ``payment_behavior=pending_if_incomplete``:
    Stripe switches the price only once that invoice is paid, so a failed charge leaves the
    old plan in place (and the app, following Stripe, keeps it too). A downgrade is made in
    Stripe as a subscription schedule: the current price until the period end, then the new
    one; nothing is pending only in our database. ``proration_date`` is the preview's (see
    ``plan_change_quote``), so the charge is the one the customer saw.

    What Stripe returns is applied at once by the webhook's rules.
    """
    entry = plan_entry(tier, interval)
    when = proration_time(proration_date=proration_date, now=timezone.now())
    data = live_subscription(user)
    subscription_id = data["id"]
    current = price_entry(subscription_price(data))
    schedule_id = object_id(data.get("schedule"))
    if current is not None and current.lookup_key == entry.lookup_key:
        if schedule_id:  # back to the current plan: drop the scheduled change
            key = request_key_for("release", subscription_id)
            gateway.subscription_schedule_release(schedule_id, idempotency_key=key)
            now_at_stripe = gateway.subscription_retrieve(subscription_id)
            returned_subscription_apply(now_at_stripe, request_key=key)
        return
    if not change_applies_now(current, entry):
        key = _downgrade_schedule(data, entry, schedule_id)
        returned_subscription_apply(gateway.subscription_retrieve(subscription_id), request_key=key)
        return
    if schedule_id:
        gateway.subscription_schedule_release(
            schedule_id, idempotency_key=request_key_for("release", subscription_id)
        )
    if data.get("cancel_at_period_end") or data.get("cancel_at"):
        # Pending updates accept only price and proration fields: undo a cancellation first.
        gateway.subscription_modify(
            subscription_id,
            cancel_at_period_end=False,
            idempotency_key=request_key_for("resume-for-change", subscription_id),
        )
    key = request_key_for("change-plan", subscription_id)
    changed = gateway.subscription_modify(
        subscription_id,
        **change_details(data, entry, applies_now=True, proration_date=when),
        payment_behavior="pending_if_incomplete",
        idempotency_key=key,
    )
    returned_subscription_apply(changed, request_key=key)


def _downgrade_schedule(
    data: dict[str, Any], entry: catalogue.PriceEntry, schedule_id: str | None
) -> str:
    """Schedule the lower price for the period end in Stripe (a subscription schedule);
    returns the key of the request that did."""
    subscription_id = data["id"]
    if data.get("cancel_at_period_end") or data.get("cancel_at"):
        gateway.subscription_modify(
            subscription_id,
            cancel_at_period_end=False,
            idempotency_key=request_key_for("resume-for-change", subscription_id),
        )
    if not schedule_id:
        stripe_schedule = gateway.subscription_schedule_create(
            subscription_id=subscription_id,
            idempotency_key=request_key_for("schedule", subscription_id),
        )
    else:
        stripe_schedule = gateway.subscription_schedule_retrieve(schedule_id)
    schedule = to_dict(stripe_schedule)
    current = schedule.get("current_phase") or {}
    phase = next(
        (p for p in schedule["phases"] if p.get("start_date") == current.get("start_date")),
        schedule["phases"][0],
    )
    current_price = object_id(phase["items"][0]["price"])
    key = request_key_for("schedule-phases", subscription_id)
    gateway.subscription_schedule_modify(
        schedule["id"],
        end_behavior="release",
        phases=[
            {
                "items": [{"price": current_price, "quantity": 1}],
                "start_date": phase["start_date"],
                "end_date": phase["end_date"],
                "proration_behavior": "none",
            },
            {
                "items": [{"price": price_id_for(entry.lookup_key), "quantity": 1}],
                "duration": {"interval": entry.interval, "interval_count": 1},
                "proration_behavior": "none",
            },
        ],
        idempotency_key=key,
    )
    return key


CANCELLED_BY_CUSTOMER = "Cancelled by the customer on our billing page"


def subscription_cancel(*, user: User, immediate: bool = False) -> None:
    """Cancel at the end of the paid period (default) or now; what Stripe returns is applied
    at once (the page then offers Resume, or shows the free plan)."""
    data = live_subscription(user)
    subscription_id = data["id"]
    if schedule_id := object_id(data.get("schedule")):
        # Stripe refuses cancellation changes on a scheduled subscription; a scheduled
        # downgrade means nothing once the subscription ends anyway.
        gateway.subscription_schedule_release(
            schedule_id, idempotency_key=request_key_for("release", subscription_id)
        )
    # Marks the cancellation as the customer's own (the page after the end says who ended it).
    details = {"comment": CANCELLED_BY_CUSTOMER}
    if immediate:
        key = f"cancel:{subscription_id}"
        ended = gateway.subscription_cancel_now(
            subscription_id, idempotency_key=key, cancellation_details=details
        )
        returned_subscription_apply(
            ended, request_key=request_key_for("cancel-now", subscription_id)
        )
    else:
        key = request_key_for("cancel-at-end", subscription_id)
        cancelling = gateway.subscription_modify(
            subscription_id,
            cancel_at_period_end=True,
            cancellation_details=details,
            idempotency_key=key,
        )
        returned_subscription_apply(cancelling, request_key=key)


def subscription_resume(*, user: User) -> None:
    """Undo a cancellation at period end, while the period lasts (applied at once)."""
    subscription_id = _live_subscription_id(user)
    key = request_key_for("resume", subscription_id)
    resumed = gateway.subscription_modify(
        subscription_id,
        cancel_at_period_end=False,
        cancellation_details={"comment": ""},  # no longer the customer's cancellation
        idempotency_key=key,
    )
    returned_subscription_apply(resumed, request_key=key)


class ReplayRefused(DomainError):
    code = "replay_refused"
    status = 400
    message = "Only a validly signed delivery that failed can be replayed"


class StaffOnly(DomainError):
    code = "staff_only"
    status = 403
    message = "Only staff can do this"


def _require_staff(user: User) -> None:
    # The admin guards its own pages; the services guard themselves too, so a future caller
    # (a page, a command, an API) cannot hand a customer a staff action by forgetting to.
    if not (getattr(user, "is_active", False) and getattr(user, "is_staff", False)):
        raise StaffOnly()


def webhook_event_replay(*, trigger: WebhookEventTrigger, staff_user: User) -> bool:
    """Run a stored delivery that failed through processing again (e.g. after a fix).

    Only validly signed deliveries qualify; processing is idempotent by event id and by our
    ledger keys, so a replay of something that did land changes nothing.
    """
    _require_staff(staff_user)
    if not trigger.valid:
        raise ReplayRefused()
    if trigger.processed:
        return False
    logger.info("staff %s replays webhook trigger %s", staff_user.pk, trigger.pk)
    with transaction.atomic():
        trigger.process(save=True, api_key=gateway.secret_key() or None)
    return True


def account_resync_from_stripe(*, account: CreditAccount, staff_user: User) -> str:
    """Staff: bring one account in line with Stripe now; returns what changed."""
    _require_staff(staff_user)
    return account_resync(account=account, reason=f"staff-resync:{staff_user.pk}")

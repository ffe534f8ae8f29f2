from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from subscriptions.catalogue import FREE_TIER, tier_choices


class SubscriptionStatus(models.TextChoices):
    # Mirrors Stripe's subscription statuses; "none" for accounts that never subscribed.
    NONE = "none", "No subscription"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Statuses in which Stripe still considers the subscription alive (past_due: in dunning). The
# one list: Stripe's dicts (plain strings) and our rows are both checked against it.
LIVE_STATUSES = frozenset(
    {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE}
)


class CreditAccountQuerySet(models.QuerySet):
    def below(self, threshold_field: str) -> CreditAccountQuerySet:
        """Accounts whose ``remaining`` (as the property reckons it) is under their own
        ``threshold_field``; a threshold of 0 is off."""
        left = F("monthly_allowance") - F("monthly_used") + F("purchased_balance")
        return (
            self.filter(**{f"{threshold_field}__gt": 0})
            .annotate(left=left)
            .filter(left__lt=F(threshold_field))
        )

    def in_grace(self, now: datetime) -> CreditAccountQuerySet:
        """Accounts for which ``CreditAccount.in_grace(now)`` holds, as a query."""
        return self.filter(subscription_status=SubscriptionStatus.PAST_DUE, grace_until__gt=now)

    @staticmethod
    def grace_over_q(now: datetime) -> Q:
        """``CreditAccount.grace_over(now)`` as a condition, to combine with others."""
        return Q(subscription_status=SubscriptionStatus.PAST_DUE, grace_until__lte=now)


class BillingInterval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class CreditAccount(models.Model):
    """A user's tier and credits: the cached state that the ledger sums to.

    remaining = (monthly_allowance - monthly_used) + purchased_balance, never negative: the
    CHECK constraints below hold it in the database, not only in Python. The monthly allowance
    is spent first and resets each period; purchased credits never expire. Only the services in
    ``subscriptions.services`` change a row, under ``select_for_update`` and with a ledger row.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_account"
    )
    tier = models.CharField(max_length=32, choices=tier_choices, default=FREE_TIER.key)
    # Credits (integer units).
    monthly_allowance = models.PositiveIntegerField(default=0)
    monthly_used = models.PositiveIntegerField(default=0)
    purchased_balance = models.PositiveIntegerField(default=0)
    # Staff may size an institutional customer's allowance; None means the tier's default.
    custom_allowance = models.PositiveIntegerField(null=True, blank=True)
    # E-mail the user once a period when fewer credits than this are left (0: never).
    low_credit_threshold = models.PositiveIntegerField(default=0)
    # Auto top-up: buy a bundle with the saved card when fewer credits than this are left
    # (0: off; billing/auto_topup.py).
    auto_topup_below = models.PositiveIntegerField(default=0)
    # The current allowance period (monthly, even for yearly plans).
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    # Monthly periods are counted from this instant (sign-up, or the subscription's start) so a
    # 31st keeps its day where months allow it.
    period_anchor = models.DateTimeField()
    # A downgrade waits for the end of the paid period; it is applied at the next reset.
    pending_tier = models.CharField(max_length=32, choices=tier_choices, blank=True)
    subscription_status = models.CharField(
        max_length=32, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE
    )
    billing_interval = models.CharField(max_length=8, choices=BillingInterval.choices, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # Stripe's paid period; a yearly plan has twelve allowance periods inside one.
    billing_period_end = models.DateTimeField(null=True, blank=True)
    # Past due: the paid tier is kept until this instant, then the account falls to free.
    grace_until = models.DateTimeField(null=True, blank=True)
    # Newest Stripe subscription state applied (Stripe's own timestamp), so late events lose.
    stripe_state_at = models.DateTimeField(null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_price_lookup_key = models.CharField(max_length=64, blank=True)
    # Set when Stripe reports a price the catalogue does not know: the tier is kept, staff look.
    billing_problem = models.CharField(max_length=255, blank=True)
    # Earliest expiry among open holds, so a read knows without a query whether to sweep.
    next_hold_expiry_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every change: the ETag of tier-info derives from it.
    version = models.PositiveBigIntegerField(default=1)
    # The share of the last one-statement charge taken from the allowance, written by that
    # statement (subscriptions/services/charge.py) so its ledger row reads the split the row
    # itself was charged with. Nothing else reads it.
    last_charge_from_allowance = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CreditAccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_used__lte=F("monthly_allowance")),
                name="credit_account_used_within_allowance",
            ),
            models.CheckConstraint(
                condition=Q(monthly_allowance__gte=0)
                & Q(monthly_used__gte=0)
                & Q(purchased_balance__gte=0),
                name="credit_account_buckets_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="credit_account_period_ordered",
            ),
        ]
        indexes = [models.Index(fields=["period_end"], name="credit_account_period_end")]

    def __str__(self) -> str:
        return f"{self.user} ({self.tier})"

    @property
    def monthly_remaining(self) -> int:
        return self.monthly_allowance - self.monthly_used

    @property
    def remaining(self) -> int:
        return self.monthly_remaining + self.purchased_balance

    # The grace rule: a past-due subscription keeps its paid tier until ``grace_until``. These
    # two predicates (and their query forms on the queryset above) are its only definition.
    def in_grace(self, now: datetime) -> bool:
        """Past due, and the paid tier is still kept at ``now``."""
        return (
            self.subscription_status == SubscriptionStatus.PAST_DUE
            and self.grace_until is not None
            and self.grace_until > now
        )

    def grace_deadline(self, *, past_due_at: datetime) -> datetime:
        """Until when a subscription that went past due at ``past_due_at`` keeps its tier: a
        grace already running keeps its end (a second failed retry does not extend it)."""
        return self.grace_until or past_due_at + timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)

    def grace_over(self, now: datetime) -> bool:
        """Past due and the grace ran out: the account is due to fall to free."""
        return (
            self.subscription_status == SubscriptionStatus.PAST_DUE
            and self.grace_until is not None
            and self.grace_until <= now
        )

    @property
    def subscription_live(self) -> bool:
        """Stripe still considers the subscription alive (past_due included: in dunning)."""
        return self.subscription_status in LIVE_STATUSES

    @property
    def has_live_subscription(self) -> bool:
        """A Stripe subscription exists and is alive: plan changes go through it."""
        return bool(self.stripe_subscription_id) and self.subscription_live


class HoldStatus(models.TextChoices):
    OPEN = "open", "Open"
    CAPTURED = "captured", "Captured"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class CreditHold(models.Model):
    """Credits reserved for a long operation: counted as spent until released or expired."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_holds"
    )
    action = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    # Credits taken from each bucket, so a release returns them where they came from.
    monthly_amount = models.PositiveIntegerField()
    purchased_amount = models.PositiveIntegerField()
    # The allowance period the monthly part belongs to; after a reset it is not given back.
    period_start = models.DateTimeField()
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.OPEN)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "status", "expires_at"], name="hold_user_open")]

    def __str__(self) -> str:
        return f"hold #{self.pk} {self.action} x{self.quantity} ({self.status})"

    @property
    def amount(self) -> int:
        return self.monthly_amount + self.purchased_amount


class ComponentUnlock(models.Model):
    """Time-limited access to a research component, paid once per window."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="component_unlocks"
    )
    component = models.CharField(max_length=64)
    tier = models.CharField(max_length=32, choices=tier_choices)
    cost = models.PositiveIntegerField()  # credits
    unlocked_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Set once the research_expired activity is written (conditional update: once only).
    expiry_recorded = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["user", "component", "-expires_at"], name="unlock_user_component"),
            models.Index(fields=["expiry_recorded", "expires_at"], name="unlock_expiry_sweep"),
        ]
        constraints = [
            # "Already unlocked", for the database: one open unlock per user and component
            # (migration 0004). A new one closes the expired one first (services/spending.py).
            models.UniqueConstraint(
                fields=["user", "component"],
                condition=Q(expiry_recorded=False),
                name="unlock_one_open_per_component",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component} until {self.expires_at:%Y-%m-%d %H:%M}"


class SupportAccount(CreditAccount):
    """No table: a home for the support staff's own permissions (see the data migration that
    creates the "support" group)."""

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [
            ("adjust_credits", "Can grant or remove credits and set custom allowances"),
            ("resync_billing", "Can resync accounts from Stripe and replay failed webhooks"),
        ]


class TokenGeneration(models.Model):
    """The user's token generation: every JWT carries the one it was issued under.

    Bumping it (logout, password change or reset, staff action) revokes every access and
    refresh token of the user at once. JWT authentication reads it in the same query as the
    user and the credit account, so the check costs no round trip. No row means generation 0.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="token_generation",
    )
    value = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)
    reason = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.user_id}: generation {self.value}"


class RefreshFamily(models.Model):
    """One sign-in and the tokens rotated from it.

    Each refresh hands out a new pair and remembers only the newest pair's id: presenting an
    older one (a refresh token or access token that was already exchanged) means a copy is in
    someone else's hands, so the whole family is revoked (OAuth's refresh-token rotation with
    reuse detection).
    """

    id = models.CharField(max_length=32, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_families"
    )
    current_pair = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.id} ({'revoked' if self.revoked_at else 'active'})"


class GoogleIdentity(models.Model):
    """A Google account (its stable subject) linked to one of our users."""

    subject = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="google_identities"
    )
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Google {self.subject} -> {self.user_id}"

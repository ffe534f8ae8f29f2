from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTransform


class LedgerKind(models.TextChoices):
    PERIOD_RESET = "period_reset", "Monthly allowance reset"
    ALLOWANCE_EXPIRED = "allowance_expired", "Monthly allowance expired"
    ALLOWANCE_CHANGE = "allowance_change", "Allowance changed"
    PURCHASE = "purchase", "Credits purchased"
    SPEND = "spend", "Credits spent"
    HOLD = "hold", "Credits held"
    HOLD_CAPTURE = "hold_capture", "Hold captured"
    HOLD_RELEASE = "hold_release", "Hold released"
    UNLOCK = "unlock", "Component unlocked"
    CLAWBACK = "clawback", "Credits clawed back"
    # A clawback undone: a dispute won, a refund that failed.
    CLAWBACK_REVERSAL = "clawback_reversal", "Clawback reversed"
    ADJUSTMENT = "adjustment", "Staff adjustment"


def ledger_kind_choices() -> list[tuple[str, str]]:
    # A callable, so a new kind is a line above and no migration.
    return LedgerKind.choices


# The kinds that spend credits (a released hold gives them back): what "credits used" counts.
SPENDING_KINDS = (LedgerKind.SPEND, LedgerKind.HOLD, LedgerKind.UNLOCK, LedgerKind.HOLD_RELEASE)


class Actor(models.TextChoices):
    USER = "user", "User"
    STRIPE = "stripe", "Stripe"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


class LedgerEntry(models.Model):
    """One change of a user's credits. Append-only: a correction is a new row.

    Invariants (checked by ``activities.selectors.ledger_drift`` and the tests):
    - the sum of ``monthly_delta`` equals the account's monthly remaining
      (``monthly_allowance - monthly_used``) and the sum of ``purchased_delta`` equals its
      ``purchased_balance``; the ledger sums to the account at any time;
    - ``idempotency_key`` is unique: a retried change (webhook redelivery, client retry)
      finds the first row instead of changing the balance twice.
    Rows are never updated or deleted: the admin is read-only and foreign keys PROTECT.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=32, choices=ledger_kind_choices)
    # Deltas and balances are integer credits.
    monthly_delta = models.IntegerField(default=0)
    purchased_delta = models.IntegerField(default=0)
    monthly_remaining_after = models.IntegerField()
    purchased_after = models.IntegerField()
    tier_after = models.CharField(max_length=32)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reason = models.CharField(max_length=500, blank=True)
    # What caused it: a Stripe event/session/invoice id, a hold or unlock id, a client key.
    source = models.CharField(max_length=255, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["user", "-id"], name="ledger_user_newest"),
            # A refund or dispute finds its bundle by payment (billing/clawbacks.py), on every
            # bundle's Checkout too: without it, a scan of the whole ledger (177 ms per event
            # at a million rows, bench/task_queue.py's profile).
            models.Index(
                KeyTransform("payment_intent", "details"),
                condition=models.Q(kind="purchase"),
                name="ledger_purchase_by_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.total_delta:+d} ({self.user_id})"

    @property
    def total_delta(self) -> int:
        return self.monthly_delta + self.purchased_delta

    @property
    def remaining_after(self) -> int:
        return self.monthly_remaining_after + self.purchased_after

    @property
    def is_expiry(self) -> bool:
        """Unused monthly allowance running out at a reset: not a loss, nothing was taken."""
        return self.kind == LedgerKind.ALLOWANCE_EXPIRED

    @property
    def expired_credits(self) -> int:
        return -self.monthly_delta if self.is_expiry else 0


class ActivityType(models.TextChoices):
    TIER_CHANGED = "tier_changed", "Tier changed"
    CREDITS_PURCHASED = "credits_purchased", "Credits purchased"
    CREDITS_ADJUSTED = "credits_adjusted", "Credits adjusted"
    CREDITS_CLAWED_BACK = "credits_clawed_back", "Credits clawed back"
    CREDITS_RESTORED = "credits_restored", "Credits restored"
    ALLOWANCE_RESET = "allowance_reset", "Monthly allowance reset"
    RESEARCH_UNLOCKED = "research_unlocked", "Research unlocked"
    RESEARCH_EXPIRED = "research_expired", "Research expired"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription canceled"
    SUBSCRIPTION_RESUMED = "subscription_resumed", "Subscription resumed"
    TRIAL_ENDING = "trial_ending", "Trial ending"


def activity_type_choices() -> list[tuple[str, str]]:
    # A callable, so a new type (a new Stripe event shown in the feed) needs no migration.
    return ActivityType.choices


class Activity(models.Model):
    """A line in the user's activity feed: what happened, told for people."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="activities"
    )
    activity_type = models.CharField(max_length=32, choices=activity_type_choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    symbol = models.CharField(max_length=16, blank=True)
    ledger_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="activities"
    )
    # Guards one-off activities (a research_expired per unlock) against double recording.
    dedupe_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["user", "-id"], name="activity_user_newest"),
            models.Index(fields=["user", "activity_type", "-id"], name="activity_user_type_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.user_id})"


class EmailSent(models.Model):
    """An e-mail sent to a user, by what it was about: one per ``key`` (a receipt per invoice,
    a failure notice per failed invoice...), whatever Stripe's retries or our own."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="emails_sent"
    )
    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=32)
    subject = models.CharField(max_length=200)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "e-mails sent"

    def __str__(self) -> str:
        return f"{self.kind} to {self.user_id}: {self.subject}"

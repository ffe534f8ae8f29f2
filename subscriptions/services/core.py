"""The mechanics every rule shares: lock the account, check, append the ledger row, update.

PostgreSQL's row lock (``select_for_update``) is the arbiter between concurrent requests on
any number of processes; the ledger's UNIQUE idempotency key makes a repeated change a no-op;
CHECK constraints on the account are the last line against overdraft.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from activities.models import Actor, LedgerEntry, LedgerKind
from activities.services import ledger_append
from subscriptions import catalogue
from subscriptions.errors import (
    InsufficientCredits,
)
from subscriptions.models import (
    LIVE_STATUSES,  # noqa: F401  (re-exported: defined once, on the model)
    CreditAccount,
    SubscriptionStatus,
)

ENDED_STATUSES = {
    SubscriptionStatus.CANCELED,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.INCOMPLETE_EXPIRED,
}
MAX_IDEMPOTENCY_KEY_LENGTH = 100


def tier_allowance(*, account: CreditAccount, tier: str) -> int:
    """The monthly credits ``tier`` grants this account (staff may size some tiers' own)."""
    spec = catalogue.TIERS[tier]
    if spec.allowance_sized_by_staff and account.custom_allowance is not None:
        return account.custom_allowance
    return spec.monthly_credits


def lock_account(user_id: int) -> CreditAccount:
    # The user comes in the same query: the ledger row needs it, and fetching it afterwards
    # was one more round trip while every other spender of a hot account waits on the lock.
    # ``of=("self",)`` locks the account row only, not the user's.
    return (
        CreditAccount.objects.select_related("user")
        .select_for_update(of=("self",))
        .get(user_id=user_id)
    )


def recorded_entry(idempotency_key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


def apply_change(
    account: CreditAccount,
    *,
    kind: LedgerKind,
    actor: Actor,
    idempotency_key: str,
    used_delta: int = 0,
    purchased_delta: int = 0,
    allowance: int | None = None,
    used: int | None = None,
    reason: str = "",
    source: str = "",
    actor_user: User | None = None,
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> LedgerEntry:
    """Change a locked account and append the ledger row that explains it.

    ``used_delta``/``purchased_delta`` move the buckets; ``allowance``/``used`` set them (a
    reset or a tier change). Other keyword ``fields`` are plain account fields to set.
    """
    new_allowance = account.monthly_allowance if allowance is None else allowance
    new_used = (account.monthly_used if used is None else used) + used_delta
    new_purchased = account.purchased_balance + purchased_delta
    monthly_delta = (new_allowance - new_used) - account.monthly_remaining
    for name, value in fields.items():
        setattr(account, name, value)
    entry = ledger_append(
        user=account.user,
        kind=kind,
        monthly_delta=monthly_delta,
        purchased_delta=purchased_delta,
        monthly_remaining_after=new_allowance - new_used,
        purchased_after=new_purchased,
        tier_after=account.tier,
        actor=actor,
        actor_user=actor_user,
        reason=reason,
        source=source,
        idempotency_key=idempotency_key,
        details=details,
    )
    # The row is locked, so these values are exact; F() keeps the UPDATE honest regardless,
    # and the CHECK constraints refuse anything that would go negative.
    update = {name: getattr(account, name) for name in fields}
    update.update(
        monthly_allowance=new_allowance,
        monthly_used=new_used if used is not None else F("monthly_used") + used_delta,
        purchased_balance=F("purchased_balance") + purchased_delta,
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    CreditAccount.objects.filter(pk=account.pk).update(**update)
    account.monthly_allowance = new_allowance
    account.monthly_used = new_used
    account.purchased_balance = new_purchased
    account.version += 1
    return entry


def split_cost(account: CreditAccount, cost: int) -> tuple[int, int]:
    """How much of ``cost`` comes from the monthly allowance and how much from purchases."""
    from_monthly = min(cost, account.monthly_remaining)
    from_purchased = cost - from_monthly
    if from_purchased > account.purchased_balance:
        raise InsufficientCredits(required=cost, remaining=account.remaining)
    return from_monthly, from_purchased


def first_after_race(idempotency_key: str, exc: IntegrityError) -> LedgerEntry:
    """After a unique-key race on the ledger, the winner's row is the answer."""
    entry = recorded_entry(idempotency_key)
    if entry is None:
        raise exc
    return entry

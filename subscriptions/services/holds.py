"""Closing credit holds (capture, release, expiry), shared by reads and the holds API."""

from __future__ import annotations

from datetime import datetime

from activities.models import Actor, LedgerKind
from subscriptions.models import (
    CreditAccount,
    CreditHold,
    HoldStatus,
)
from subscriptions.services.core import apply_change


def hold_close_locked(
    account: CreditAccount, hold: CreditHold, *, status: HoldStatus, now: datetime
) -> None:
    hold.status = status
    hold.resolved_at = now
    hold.save(update_fields=["status", "resolved_at"])
    returns = status != HoldStatus.CAPTURED
    # The monthly part only goes back while its period lasts: a reset already restored it.
    monthly_back = (
        hold.monthly_amount if returns and hold.period_start == account.period_start else 0
    )
    monthly_back = min(monthly_back, account.monthly_used)
    purchased_back = hold.purchased_amount if returns else 0
    apply_change(
        account,
        kind=LedgerKind.HOLD_CAPTURE if status == HoldStatus.CAPTURED else LedgerKind.HOLD_RELEASE,
        actor=Actor.USER if status != HoldStatus.EXPIRED else Actor.SYSTEM,
        idempotency_key=f"hold-{status}:{hold.pk}",
        used_delta=-monthly_back,
        purchased_delta=purchased_back,
        reason=f"Hold {status}",
        source=f"hold:{hold.pk}",
        details={"hold_id": hold.pk, "action": hold.action, "quantity": hold.quantity},
        next_hold_expiry_at=next_hold_expiry(account.user_id),
    )


def next_hold_expiry(user_id: int) -> datetime | None:
    holds = CreditHold.objects.filter(user_id=user_id, status=HoldStatus.OPEN)
    return holds.order_by("expires_at").values_list("expires_at", flat=True).first()


def holds_expire_locked(account: CreditAccount, now: datetime) -> None:
    due = CreditHold.objects.filter(
        user_id=account.user_id, status=HoldStatus.OPEN, expires_at__lte=now
    ).order_by("pk")
    for hold in due:
        hold_close_locked(account, hold, status=HoldStatus.EXPIRED, now=now)
    account.next_hold_expiry_at = next_hold_expiry(account.user_id)
    CreditAccount.objects.filter(pk=account.pk).update(
        next_hold_expiry_at=account.next_hold_expiry_at
    )

"""The rules that change tiers and credits: the only writers of ``CreditAccount``.

Every public service here runs in ``transaction.atomic()``, takes the account's row lock
(``select_for_update``) before reading a balance, writes exactly one ledger row per change,
and is idempotent by the ledger's UNIQUE ``idempotency_key``: a repeated key returns the first
row and changes nothing. PostgreSQL's row lock is the arbiter between concurrent requests, on
any number of processes and machines; CHECK constraints are the last line against overdraft.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from subscriptions.models import CreditAccount
from subscriptions.services.accounts import (
    account_create,
    account_get,
    account_refresh,
    allowance_period_start,
    allowances_grant_due,
    auto_topup_below_set,
    customer_forget,
    customer_link,
    low_credit_notice,
    low_credit_notices_send,
    low_credit_threshold_set,
)
from subscriptions.services.adjustments import (
    allowance_override_set,
    credits_adjust,
    credits_clawback,
    credits_clawback_settle,
    credits_purchase_add,
)
from subscriptions.services.core import (
    ENDED_STATUSES,
    LIVE_STATUSES,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    tier_allowance,
)
from subscriptions.services.spending import (
    SpendResult,
    UnlockResult,
    action_cost,
    action_get,
    component_unlock,
    credits_hold_capture,
    credits_hold_create,
    credits_hold_release,
    credits_spend,
    unlocks_record_expired,
)
from subscriptions.services.tiers import (
    SubscriptionState,
    subscription_sync,
)

__all__ = [
    "ENDED_STATUSES",
    "LIVE_STATUSES",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "SpendResult",
    "SubscriptionState",
    "UnlockResult",
    "account_create",
    "account_get",
    "account_refresh",
    "action_cost",
    "action_get",
    "after_spend_register",
    "after_spend_run",
    "allowance_override_set",
    "allowance_period_start",
    "allowances_grant_due",
    "auto_topup_below_set",
    "component_unlock",
    "credits_adjust",
    "credits_clawback",
    "credits_clawback_settle",
    "credits_hold_capture",
    "credits_hold_create",
    "credits_hold_release",
    "credits_purchase_add",
    "credits_spend",
    "customer_forget",
    "customer_link",
    "low_credit_notice",
    "low_credit_notices_send",
    "low_credit_threshold_set",
    "subscription_sync",
    "tier_allowance",
    "unlocks_record_expired",
    "upkeep_run",
    "upkeep_step_register",
]


logger = logging.getLogger(__name__)

# What apps built on this one add (billing: auto top-ups), registered from their ``ready``:
# steps of the every-minute upkeep, by name, and reactions right after a spend.
UPKEEP_STEPS: dict[str, Callable[[], int]] = {}
AFTER_SPEND_STEPS: list[Callable[..., object]] = [low_credit_notice]


def upkeep_step_register(name: str, step: Callable[[], int]) -> None:
    """Run ``step`` in every upkeep, whichever runs it."""
    UPKEEP_STEPS[name] = step


def after_spend_register(step: Callable[..., object]) -> None:
    """Call ``step(account=, remaining=)`` right after each spend."""
    if step not in AFTER_SPEND_STEPS:
        AFTER_SPEND_STEPS.append(step)


def after_spend_run(*, account: CreditAccount, remaining: int) -> None:
    """The low-credit e-mail and the registered reactions, at once for the common case (the
    upkeep's sweeps catch every other path and repeat what failed here). The spend has
    committed: no step may turn it into an error for the client, nor keep the next from
    running."""
    for step in AFTER_SPEND_STEPS:
        try:
            step(account=account, remaining=remaining)
        except Exception:
            logger.exception(
                "after the spend of user %s: %s left for the sweep", account.user_id, step.__name__
            )


def upkeep_run() -> dict[str, int]:
    """The every-minute upkeep (the task queue's scheduler, or cron without one): renew due
    allowances and expire holds, record expired unlocks, tell users low on credits, then the
    registered steps. Returns what each did."""
    done = {
        "renewed": allowances_grant_due(),
        "unlocks_expired": unlocks_record_expired(),
        "low_credit_notices": low_credit_notices_send(),
    }
    for name, step in UPKEEP_STEPS.items():
        done[name] = step()
    return done

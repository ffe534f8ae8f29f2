from __future__ import annotations

from hrvstr.errors import DomainError, InvalidAmount  # noqa: F401  (defined with the plumbing)
from subscriptions import catalogue


class InsufficientCredits(DomainError):
    code = "insufficient_credits"
    status = 402
    message = "Insufficient credits"


class UnknownAction(DomainError):
    code = "unknown_action"
    status = 400
    message = "Unknown action"


class UnknownComponent(DomainError):
    code = "unknown_component"
    status = 400
    message = "Unknown component"


class TierRequired(DomainError):
    code = "tier_required"
    status = 403
    message = "Your plan does not include this"


def require_tier(
    tier: catalogue.Tier | str,
    feature: catalogue.CreditAction | catalogue.Component | catalogue.Bundle,
    *,
    error: type[DomainError] = TierRequired,
    message: str | None = None,
) -> None:
    """Raise ``error`` (a 403) unless ``tier`` allows ``feature``; the one shape of the answer:
    ``{feature, tier, requiredTiers}``."""
    spec = catalogue.TIERS[tier] if isinstance(tier, str) else tier
    if spec.allows(feature):
        return
    allowed = catalogue.tiers_allowing(feature)
    if message is None and error is TierRequired and allowed:
        lowest = catalogue.TIERS[allowed[0]]
        above = " or above" if tuple(allowed) == catalogue.tiers_from(lowest.key) else ""
        message = f"{feature.name} needs the {lowest.name} plan{above}"
    raise error(
        message,
        feature=feature.key,
        tier=spec.key,
        requiredTiers=allowed,
    )


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    message = "This Idempotency-Key was already used for a different request"


class HoldNotFound(DomainError):
    code = "hold_not_found"
    status = 404
    message = "No such hold"


class HoldNotOpen(DomainError):
    code = "hold_not_open"
    status = 409
    message = "This hold is no longer open"


class SelfAdjustmentRefused(DomainError):
    code = "self_adjustment_refused"
    status = 403
    message = "Staff cannot change their own credits: ask another staff member"

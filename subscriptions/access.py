"""Tier gates for views and DRF: one check, two adapters.

A refusal is 403 ``{error, feature, tier, requiredTiers}`` so the SPA can offer the upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.permissions import BasePermission

from subscriptions import catalogue
from subscriptions.errors import TierRequired
from subscriptions.services import account_get


def tier_check(*, user: AbstractBaseUser, tier: str | None = None, feature: str | None = None):
    """Raise ``TierRequired`` unless the user's tier reaches ``tier`` or includes ``feature``."""
    account = account_get(user=user)
    current = catalogue.TIERS[account.tier]
    if tier is not None:
        required_rank = catalogue.TIERS[tier].rank
        if current.rank < required_rank:
            raise TierRequired(
                f"This needs the {catalogue.TIERS[tier].name} plan or above",
                feature=feature or tier,
                tier=current.key,
                requiredTiers=catalogue.tiers_at_or_above(required_rank),
            )
    if feature is not None and feature not in current.features:
        raise TierRequired(
            "Your plan does not include this feature",
            feature=feature,
            tier=current.key,
            requiredTiers=catalogue.tiers_with_feature(feature),
        )


def _permission(tier: str | None, feature: str | None) -> type[BasePermission]:
    class TierPermission(BasePermission):
        def has_permission(self, request: Any, view: Any) -> bool:
            if not request.user or not request.user.is_authenticated:
                return False
            tier_check(user=request.user, tier=tier, feature=feature)
            return True

    return TierPermission


def RequiresTier(tier: str) -> type[BasePermission]:
    """DRF permission: ``permission_classes = [IsAuthenticated, RequiresTier("pro")]``."""
    if tier not in catalogue.TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    return _permission(tier, None)


def RequiresFeature(feature: str) -> type[BasePermission]:
    return _permission(None, feature)


def requires_tier(
    tier: str | None = None, *, feature: str | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorator for Django views; answers 403 JSON (API-style) when the tier is too low."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return JsonResponse({"success": False, "error": "Login required"}, status=401)
            try:
                tier_check(user=request.user, tier=tier, feature=feature)
            except TierRequired as exc:
                return JsonResponse(exc.payload(), status=exc.status)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def requires_feature(feature: str):
    return requires_tier(None, feature=feature)

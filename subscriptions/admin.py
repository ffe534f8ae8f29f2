from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from subscriptions.models import ComponentUnlock, CreditAccount, CreditHold

BALANCE_FIELDS = (
    "tier",
    "monthly_allowance",
    "monthly_used",
    "purchased_balance",
    "custom_allowance",
    "pending_tier",
    "period_start",
    "period_end",
    "period_anchor",
    "subscription_status",
    "billing_interval",
    "billing_period_end",
    "cancel_at_period_end",
    "grace_until",
    "stripe_customer_id",
    "stripe_subscription_id",
    "stripe_price_lookup_key",
    "stripe_state_at",
    "billing_problem",
    "next_hold_expiry_at",
    "version",
)


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    """Balances change only through services (with a ledger row), so every field is read-only."""

    list_display = (
        "user",
        "tier",
        "monthly_allowance",
        "monthly_used",
        "purchased_balance",
        "subscription_status",
        "period_end",
        "billing_problem",
    )
    list_filter = ("tier", "subscription_status", "cancel_at_period_end")
    search_fields = ("user__email", "stripe_customer_id", "stripe_subscription_id")
    readonly_fields = ("user",) + BALANCE_FIELDS
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CreditHold)
class CreditHoldAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "action", "quantity", "status", "expires_at")
    list_filter = ("status",)
    search_fields = ("user__email",)
    readonly_fields = [field.name for field in CreditHold._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ComponentUnlock)
class ComponentUnlockAdmin(CreditHoldAdmin):
    list_display = ("id", "user", "component", "tier", "cost", "unlocked_at", "expires_at")
    list_filter = ("component", "tier")
    readonly_fields = [field.name for field in ComponentUnlock._meta.fields]

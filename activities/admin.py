from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from activities.models import Activity, LedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records: nobody edits or deletes them here, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# A ledger row's source is often a Stripe object's id: link it to our copy (dj-stripe's admin)
# and to Stripe's dashboard.
STRIPE_PREFIXES = {
    "evt_": ("event", "djstripe_event"),
    "cs_": ("checkout session", "djstripe_session"),
    "in_": ("invoice", "djstripe_invoice"),
    "sub_": ("subscription", "djstripe_subscription"),
    "pi_": ("payment", "djstripe_paymentintent"),
    "ch_": ("charge", "djstripe_charge"),
    "dp_": ("dispute", "djstripe_dispute"),
    "re_": ("refund", "djstripe_refund"),
}
STRIPE_DASHBOARD_PATHS = {
    "evt_": "events",
    "cs_": "checkout/sessions",
    "in_": "invoices",
    "sub_": "subscriptions",
    "pi_": "payments",
    "ch_": "payments",
    "dp_": "disputes",
    "re_": "refunds",
}


def source_links(source: str, *, livemode: bool = False) -> str:
    """Links to our copy of the Stripe object (dj-stripe's admin) and to Stripe's dashboard."""
    for prefix, (label, model_admin) in STRIPE_PREFIXES.items():
        if source.startswith(prefix):
            local = reverse(f"admin:{model_admin}_changelist") + f"?id={source}"
            dashboard = (
                "https://dashboard.stripe.com/"
                + ("" if livemode else "test/")
                + f"{STRIPE_DASHBOARD_PATHS[prefix]}/{source}"
            )
            return format_html(
                '<a href="{}" title="our copy of the Stripe {}">{}</a> '
                '(<a href="{}" rel="noopener" target="_blank">Stripe</a>)',
                local,
                label,
                source,
                dashboard,
            )
    return source


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "kind",
        "monthly_delta",
        "purchased_delta",
        "monthly_remaining_after",
        "purchased_after",
        "actor",
        "actor_user",
        "source_link",
        "reason",
    )
    list_filter = ("kind", "actor")
    search_fields = ("user__email", "source", "idempotency_key", "reason")
    list_select_related = ("user", "actor_user")
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="source", ordering="source")
    def source_link(self, entry: LedgerEntry) -> str:
        return source_links(entry.source, livemode=bool(entry.details.get("livemode")))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in LedgerEntry._meta.fields] + ["source_link"]


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "activity_type", "title")
    list_filter = ("activity_type",)
    search_fields = ("user__email", "title")
    list_select_related = ("user",)
    show_full_result_count = False

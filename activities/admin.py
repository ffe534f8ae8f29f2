from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from activities.models import Activity, LedgerEntry

if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin  # what the mixin is mixed into, for the type checker
else:
    _AdminBase = object


class ReadOnlyMixin(_AdminBase):
    """Nobody adds, edits or deletes here, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Append-only records: nobody edits or deletes them here, superusers included."""


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


# --- a ledger row, in words that fit a column (the ledger list and each user's page) ---------

REASON_CHARS = 60


def change_text(entry: LedgerEntry) -> str:
    """ "+500 monthly", "-3 purchased", "+500 monthly, -3 purchased", or "0"."""
    parts = [
        f"{delta:+,d} {pool}"
        for delta, pool in ((entry.monthly_delta, "monthly"), (entry.purchased_delta, "purchased"))
        if delta
    ]
    return ", ".join(parts) or "0"


def left_after_text(entry: LedgerEntry) -> str:
    return format_html(
        '<span title="{} monthly + {} purchased">{}</span>',
        f"{entry.monthly_remaining_after:,d}",
        f"{entry.purchased_after:,d}",
        f"{entry.remaining_after:,d}",
    )


def by_text(entry: LedgerEntry) -> str:
    who = entry.get_actor_display()
    return f"{who} ({entry.actor_user.email})" if entry.actor_user_id and entry.actor_user else who


def reason_html(entry: LedgerEntry) -> str:
    """The reason, cut to fit a column, whole on hover."""
    if not entry.reason:
        return ""
    return format_html(
        '<span class="ledger-reason" title="{}">{}</span>',
        entry.reason,
        Truncator(entry.reason).chars(REASON_CHARS),
    )


def source_html(entry: LedgerEntry) -> str:
    if not entry.source:
        return ""
    return format_html(
        '<span class="ledger-source">{}</span>',
        source_links(entry.source, livemode=bool(entry.details.get("livemode"))),
    )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    # Eight narrow columns, the long ones (source ids, reasons) wrapped or cut with the whole
    # text on hover, and no app sidebar: the list fits a laptop screen (1280 px, filters
    # shown) instead of scrolling Source and Reason out of sight (devtools/tests/test_browser).
    list_display = (
        "id",
        "when",
        "user",
        "what",
        "change",
        "left_after",
        "source_link",
        "reason_short",
    )
    list_filter = ("kind", "actor")
    search_fields = ("user__email", "source", "idempotency_key", "reason")
    list_select_related = ("user", "actor_user")
    date_hierarchy = "created_at"
    show_full_result_count = False

    class Media:
        css = {"all": ("hrvstr/support.css",)}

    @admin.display(description="change")
    def change(self, entry: LedgerEntry) -> str:
        return change_text(entry)

    @admin.display(description="left after")
    def left_after(self, entry: LedgerEntry) -> str:
        return left_after_text(entry)

    @admin.display(description="when", ordering="created_at")
    def when(self, entry: LedgerEntry) -> str:
        return f"{entry.created_at:%-d %b %Y %H:%M}"

    @admin.display(description="what", ordering="kind")
    def what(self, entry: LedgerEntry) -> str:
        return format_html(
            '{}<br><span class="quiet">by {}</span>', entry.get_kind_display(), by_text(entry)
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        return super().changelist_view(
            request, {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        )

    @admin.display(description="source", ordering="source")
    def source_link(self, entry: LedgerEntry) -> str:
        return source_html(entry)

    @admin.display(description="reason", ordering="reason")
    def reason_short(self, entry: LedgerEntry) -> str:
        return reason_html(entry)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in LedgerEntry._meta.fields] + ["source_link"]


def ledger_rows(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """The latest rows of one user's ledger as the ledger list shows them (the user page)."""
    return [
        {
            "entry": entry,
            "change": change_text(entry),
            "left_after": left_after_text(entry),
            "by": by_text(entry),
            "source": source_html(entry),
            "reason": reason_html(entry),
        }
        for entry in entries
    ]


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "activity_type", "title")
    list_filter = ("activity_type",)
    search_fields = ("user__email", "title")
    list_select_related = ("user",)
    show_full_result_count = False

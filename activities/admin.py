from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from activities.models import Activity, LedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records: nobody edits or deletes them here, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
        "source",
    )
    list_filter = ("kind", "actor")
    search_fields = ("user__email", "source", "idempotency_key", "reason")
    list_select_related = ("user", "actor_user")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "activity_type", "title")
    list_filter = ("activity_type",)
    search_fields = ("user__email", "title")
    list_select_related = ("user",)
    show_full_result_count = False

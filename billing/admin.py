"""Stripe in the admin: replay a failed webhook delivery, and dj-stripe's own admin repaired
where the ledger links into it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from djstripe.admin.admin import InvoiceAdmin, SessionAdmin, WebhookEventTriggerAdmin
from djstripe.models import Invoice, Session, WebhookEventTrigger

from billing import services as billing_services
from hrvstr.errors import DomainError
from hrvstr.http import AuthenticatedHttpRequest
from subscriptions.admin import SupportAction, reason_action, support_action_register
from subscriptions.forms import ReasonForm
from subscriptions.services import account_get

# --- webhook deliveries: replay a failed one ------------------------------------------------------


def _resync(user: Any, staff: Any, data: dict[str, Any], key: str) -> str:
    summary = billing_services.account_resync_from_stripe(
        account=account_get(user=user), staff_user=staff
    )
    return f"resynced from Stripe: {summary}"


# On the support staff's user admin (subscriptions/admin.py): billing's action, registered here.
support_action_register(
    SupportAction(
        "resync_from_stripe",
        "Resync from Stripe",
        ReasonForm,
        "subscriptions.resync_billing",
        _resync,
    )
)

admin.site.unregister(WebhookEventTrigger)


@admin.register(WebhookEventTrigger)
class SupportWebhookEventTriggerAdmin(WebhookEventTriggerAdmin):
    actions = ["replay"]

    def has_resync_billing_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("subscriptions.resync_billing")

    @admin.action(description="Replay failed webhook deliveries", permissions=["resync_billing"])
    def replay(self, request: AuthenticatedHttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def apply(trigger: WebhookEventTrigger, data: dict[str, Any]) -> str:
            try:
                replayed = billing_services.webhook_event_replay(
                    trigger=trigger, staff_user=request.user
                )
            except DomainError:
                raise
            except Exception as exc:  # the handler failed again: say so, go on with the next
                raise DomainError(f"failed again ({exc})") from exc
            return "replayed" if replayed else "already processed, nothing to do"

        return reason_action(
            self,
            request,
            queryset,
            form_class=ReasonForm,
            title="Replay failed webhook deliveries",
            action="replay",
            apply=apply,
            label=lambda trigger: f"#{trigger.pk}",
        )


# --- dj-stripe's own admin, repaired where the ledger links into it ----------------------------
# dj-stripe 2.11's invoice and session admins name fields that the current schema no longer
# has ("paid", "number", "receipt_number", "customer_email"): their list and search pages
# crash. The same pages without those fields (search by id still works: dj-stripe adds it).

admin.site.unregister(Invoice)
admin.site.unregister(Session)


if TYPE_CHECKING:
    _AdminMixinBase = admin.ModelAdmin  # what the mixin is mixed into, for the type checker
else:
    _AdminMixinBase = object


class ReadablePropertiesMixin(_AdminMixinBase):
    """dj-stripe shows every model property on the detail page; some read ``stripe_data`` keys
    that today's API no longer sends (KeyError). Show the ones that can be read."""

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> list[str] | tuple[str, ...]:
        fields = super().get_readonly_fields(request, obj)
        if obj is None:
            return fields
        readable = []
        for name in fields:
            try:
                getattr(obj, name)
            except (KeyError, AttributeError, TypeError, ValueError):
                continue
            readable.append(name)
        return readable


@admin.register(Invoice)
class RepairedInvoiceAdmin(ReadablePropertiesMixin, InvoiceAdmin):
    list_display = ("total", "currency", "customer")
    search_fields = ()


@admin.register(Session)
class RepairedSessionAdmin(ReadablePropertiesMixin, SessionAdmin):
    list_display = ("customer", "subscription")
    search_fields = ("customer__id",)

"""Stripe in the admin: replay a failed webhook delivery, and dj-stripe's own admin repaired
where the ledger links into it and made read-only throughout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from djstripe.admin.admin import InvoiceAdmin, SessionAdmin, WebhookEventTriggerAdmin
from djstripe.models import Invoice, Session, WebhookEventTrigger

from activities.admin import ReadOnlyMixin
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


# --- dj-stripe's ~45 model admins: read-only, for everyone --------------------------------------
# They are a mirror of Stripe. A change made here would not reach Stripe (the next webhook
# overwrites it), and the few dj-stripe admins that do call Stripe (API keys, webhook
# endpoints, "sync all instances") would go around our gateway and its rules. Support staff
# look things up here; changes are made in Stripe's dashboard or with the user page's actions.

# dj-stripe's own admin actions: re-fetch rows from Stripe, one by one or all of them.
DJSTRIPE_ACTIONS = ("_resync_instances", "_sync_all_instances")


class StripeMirrorReadOnlyMixin(ReadOnlyMixin):
    """No add, change or delete (superusers included), and no dj-stripe sync actions."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = dict(super().get_actions(request))
        for name in DJSTRIPE_ACTIONS:
            actions.pop(name, None)
        return actions

    def get_urls(self) -> list[URLPattern]:
        # The confirmation page of dj-stripe's sync actions takes a POST from any staff member.
        return [
            url
            for url in super().get_urls()
            if getattr(url, "name", None) != "djstripe_custom_action"
        ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # A read-only page shows each field by reading it off the object: drop the names that
        # only dj-stripe's add/edit forms have (e.g. a webhook endpoint's "base_url").
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if _shown(self, obj, f)]})
            for name, options in fieldsets
        ]


def _shown(model_admin: Any, obj: Any, field: Any) -> bool:
    if not isinstance(field, str):
        return True  # a group of fields on one line: dj-stripe has none that need dropping
    return hasattr(model_admin, field) or hasattr(type(obj), field) or hasattr(obj, field)


def djstripe_admins_read_only(site: admin.AdminSite) -> list[str]:
    """Re-register every dj-stripe model admin behind the read-only mixin; returns the model
    names, for the tests."""
    done = []
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label != "djstripe":
            continue
        cls = type(model_admin)
        if issubclass(cls, StripeMirrorReadOnlyMixin):
            continue
        site.unregister(model)
        site.register(model, type(f"ReadOnly{cls.__name__}", (StripeMirrorReadOnlyMixin, cls), {}))
        done.append(str(model._meta.model_name))
    return done


djstripe_admins_read_only(admin.site)

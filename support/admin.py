"""The support staff's admin: users with their credit account, actions through the ledger.

Every action here calls a service (the same ones the API and webhooks use), asks for a
reason on an intermediate page, and records the staff member: in the ledger row where the
action changes credits, and in the admin's log for every action.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from djstripe.admin.admin import InvoiceAdmin, SessionAdmin, WebhookEventTriggerAdmin
from djstripe.models import Invoice, Session, WebhookEventTrigger

from activities.admin import LedgerEntryAdmin
from activities.models import LedgerEntry
from billing import services as billing_services
from hrvstr.errors import DomainError
from subscriptions.admin import BALANCE_FIELDS
from subscriptions.models import CreditAccount
from subscriptions.services import account_get, allowance_override_set, credits_adjust
from support.forms import AdjustCreditsForm, AllowanceForm, ReasonForm

User = get_user_model()


def _token() -> str:
    return uuid.uuid4().hex


# --- users -----------------------------------------------------------------------------------


class CreditAccountInline(admin.StackedInline):
    model = CreditAccount
    fk_name = "user"
    can_delete = False
    extra = 0
    max_num = 1
    verbose_name = "credit account"
    verbose_name_plural = "credit account"
    readonly_fields = BALANCE_FIELDS
    fieldsets = (
        (None, {"fields": ("tier", "subscription_status", "billing_problem")}),
        (
            "Credits",
            {
                "fields": (
                    "monthly_allowance",
                    "monthly_used",
                    "purchased_balance",
                    "custom_allowance",
                    "period_start",
                    "period_end",
                )
            },
        ),
        (
            "Stripe",
            {
                "fields": (
                    "stripe_customer_id",
                    "stripe_subscription_id",
                    "stripe_price_lookup_key",
                    "billing_interval",
                    "billing_period_end",
                    "cancel_at_period_end",
                    "pending_tier",
                    "grace_until",
                )
            },
        ),
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# One action = a form class, a title, and what to call for one user with the cleaned data.
SupportAction = tuple[type[ReasonForm], str, Callable[[Any, Any, dict[str, Any], str], str]]


def _adjust(user: Any, staff: Any, data: dict[str, Any], key: str) -> str:
    entry = credits_adjust(
        user=user,
        amount=data["amount"],
        reason=data["reason"],
        staff_user=staff,
        idempotency_key=key,
    )
    return f"{entry.total_delta:+d} credits, {entry.remaining_after} left"


def _allowance(user: Any, staff: Any, data: dict[str, Any], key: str) -> str:
    entry = allowance_override_set(
        user=user,
        allowance=data["allowance"],
        reason=data["reason"],
        staff_user=staff,
        idempotency_key=key,
    )
    custom = data["allowance"]
    return (
        f"custom allowance {custom}" if custom is not None else "allowance back to tier default"
    ) + f", {entry.remaining_after} credits left"


def _resync(user: Any, staff: Any, data: dict[str, Any], key: str) -> str:
    summary = billing_services.account_resync_from_stripe(
        account=account_get(user=user), staff_user=staff
    )
    return f"resynced from Stripe: {summary}"


SUPPORT_ACTIONS: dict[str, SupportAction] = {
    "adjust_credits": (AdjustCreditsForm, "Grant or remove credits", _adjust),
    "set_allowance": (AllowanceForm, "Set a custom institutional allowance", _allowance),
    "resync_from_stripe": (ReasonForm, "Resync from Stripe", _resync),
}
PERMISSION_FOR = {
    "adjust_credits": "support.adjust_credits",
    "set_allowance": "support.adjust_credits",
    "resync_from_stripe": "support.resync_billing",
}


admin.site.unregister(User)


@admin.register(User)
class SupportUserAdmin(UserAdmin):
    inlines = [CreditAccountInline]
    list_display = (
        "email",
        "tier",
        "credits_left",
        "stripe_status",
        "date_joined",
    )
    list_select_related = ("credit_account",)
    list_filter = (
        "credit_account__tier",
        "credit_account__subscription_status",
        "is_staff",
        "is_active",
    )
    search_fields = (
        "email",
        "username",
        "first_name",
        "last_name",
        "credit_account__stripe_customer_id",
    )
    search_help_text = "E-mail, name or Stripe customer id (cus_...)"
    ordering = ("-date_joined",)
    actions = ["adjust_credits", "set_allowance", "resync_from_stripe"]
    change_form_template = "support/user_change_form.html"

    @admin.display(description="tier", ordering="credit_account__tier")
    def tier(self, user: Any) -> str:
        account = getattr(user, "credit_account", None)
        return account.get_tier_display() if account else "-"

    @admin.display(description="credits left")
    def credits_left(self, user: Any) -> int | str:
        account = getattr(user, "credit_account", None)
        return account.remaining if account else "-"

    @admin.display(description="Stripe status", ordering="credit_account__subscription_status")
    def stripe_status(self, user: Any) -> str:
        account = getattr(user, "credit_account", None)
        return account.get_subscription_status_display() if account else "-"

    def has_adjust_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("support.adjust_credits")

    def has_resync_billing_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("support.resync_billing")

    @admin.action(description="Grant or remove credits", permissions=["adjust_credits"])
    def adjust_credits(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._support_action(request, queryset, "adjust_credits")

    @admin.action(
        description="Set a custom institutional allowance", permissions=["adjust_credits"]
    )
    def set_allowance(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._support_action(request, queryset, "set_allowance")

    @admin.action(description="Resync from Stripe", permissions=["resync_billing"])
    def resync_from_stripe(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._support_action(request, queryset, "resync_from_stripe")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/support/<str:action>/",
                self.admin_site.admin_view(self.support_action_view),
                name="support-user-action",
            ),
            *super().get_urls(),
        ]

    def support_action_view(self, request: HttpRequest, object_id: str, action: str):
        """The same actions from one user's page (a button under the user's name)."""
        if action not in SUPPORT_ACTIONS:
            return HttpResponseRedirect(reverse("admin:auth_user_changelist"))
        if not request.user.has_perm(PERMISSION_FOR[action]):
            raise PermissionDenied
        user = get_object_or_404(User, pk=object_id)
        queryset = User.objects.filter(pk=user.pk)
        done_url = reverse("admin:auth_user_change", args=[user.pk])
        response = self._support_action(request, queryset, action, single=True)
        return response or HttpResponseRedirect(done_url)

    def _support_action(
        self, request: HttpRequest, queryset: QuerySet, action: str, *, single: bool = False
    ) -> HttpResponse | None:
        form_class, title, apply = SUPPORT_ACTIONS[action]
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                for user in queryset:
                    key = f"admin:{action}:{data['token']}:{user.pk}"
                    try:
                        outcome = apply(user, request.user, data, key)
                    except DomainError as exc:
                        self.message_user(request, f"{user.email}: {exc.message}", messages.ERROR)
                        continue
                    self.log_change(request, user, f"{title}: {outcome}. Reason: {data['reason']}")
                    self.message_user(request, f"{user.email}: {outcome}", messages.SUCCESS)
                return None
        else:
            form = form_class(initial={"token": _token()})
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "queryset": queryset,
            "action": action,
            "single": single,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "support/action_form.html", context)


# --- the ledger: read-only, with links to what caused each row ----------------------------------

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


admin.site.unregister(LedgerEntry)


@admin.register(LedgerEntry)
class SupportLedgerEntryAdmin(LedgerEntryAdmin):
    """Read-only for everyone, superusers included (see ``activities.admin.ReadOnlyAdmin``)."""

    list_display = tuple(
        "source_link" if name == "source" else name for name in LedgerEntryAdmin.list_display
    ) + ("reason",)

    @admin.display(description="source", ordering="source")
    def source_link(self, entry: LedgerEntry) -> str:
        return source_links(entry.source, livemode=bool(entry.details.get("livemode")))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return [field.name for field in LedgerEntry._meta.fields] + ["source_link"]


# --- webhook deliveries: replay a failed one ------------------------------------------------------

admin.site.unregister(WebhookEventTrigger)


@admin.register(WebhookEventTrigger)
class SupportWebhookEventTriggerAdmin(WebhookEventTriggerAdmin):
    actions = ["replay"]

    def has_resync_billing_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("support.resync_billing")

    @admin.action(description="Replay failed webhook deliveries", permissions=["resync_billing"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if "apply" in request.POST:
            form = ReasonForm(request.POST)
            if form.is_valid():
                reason = form.cleaned_data["reason"]
                for trigger in queryset:
                    try:
                        replayed = billing_services.webhook_event_replay(
                            trigger=trigger, staff_user=request.user
                        )
                    except DomainError as exc:
                        self.message_user(request, f"#{trigger.pk}: {exc.message}", messages.ERROR)
                        continue
                    except Exception as exc:  # the handler failed again: say so, keep going
                        self.message_user(
                            request, f"#{trigger.pk}: failed again ({exc})", messages.ERROR
                        )
                        continue
                    outcome = "replayed" if replayed else "already processed, nothing to do"
                    self.log_change(request, trigger, f"Replay: {outcome}. Reason: {reason}")
                    self.message_user(request, f"#{trigger.pk}: {outcome}", messages.SUCCESS)
                return None
        else:
            form = ReasonForm(initial={"token": _token()})
        context = {
            **self.admin_site.each_context(request),
            "title": "Replay failed webhook deliveries",
            "form": form,
            "queryset": queryset,
            "action": "replay",
            "single": False,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "support/action_form.html", context)


# --- dj-stripe's own admin, repaired where the ledger links into it ----------------------------
# dj-stripe 2.11's invoice and session admins name fields that the current schema no longer
# has ("paid", "number", "receipt_number", "customer_email"): their list and search pages
# crash. The same pages without those fields (search by id still works: dj-stripe adds it).

admin.site.unregister(Invoice)
admin.site.unregister(Session)


class ReadablePropertiesMixin:
    """dj-stripe shows every model property on the detail page; some read ``stripe_data`` keys
    that today's API no longer sends (KeyError). Show the ones that can be read."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        fields = super().get_readonly_fields(request, obj)  # type: ignore[misc]
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

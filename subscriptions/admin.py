"""The admin of accounts, and the support staff's admin of users.

Balances change only through services: every field of an account is read-only here. The
support actions (grant or remove credits, set an allowance, resync from Stripe) call the same
services the API and the webhooks use, ask for a reason on an intermediate page, and record
the staff member: in the ledger row where the action changes credits, and in the admin's log
for every action. An app adds its own actions with ``support_action_register`` (billing adds
"Resync from Stripe" in billing/admin.py), so this admin imports no app above subscriptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from activities.admin import ledger_rows
from activities.selectors import ledger_for_user
from hrvstr.errors import DomainError
from subscriptions import catalogue
from subscriptions.forms import AdjustCreditsForm, AllowanceForm, ReasonForm, action_token
from subscriptions.models import ComponentUnlock, CreditAccount, CreditHold
from subscriptions.services import allowance_override_set, credits_adjust
from subscriptions.tokens import tokens_revoke_all
from subscriptions.views import password_form

User = get_user_model()

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
    list_display: tuple[str, ...] = ("id", "user", "action", "quantity", "status", "expires_at")
    list_filter: ClassVar[tuple[str, ...]] = ("status",)
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


def reason_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    form_class: type[ReasonForm],
    title: str,
    action: str,
    apply: Callable[[Any, dict[str, Any]], str],
    label: Callable[[Any], str],
    single: bool = False,
) -> HttpResponse | None:
    """A reason-gated admin action (on users here, on webhook deliveries in billing).

    Shows the intermediate form; once it is valid, calls ``apply(obj, cleaned_data)`` for each
    object, logs what it did with the reason, and reports each object's outcome (a domain
    error skips to the next object)."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            for obj in queryset:
                try:
                    outcome = apply(obj, data)
                except DomainError as exc:
                    model_admin.message_user(
                        request, f"{label(obj)}: {exc.message}", messages.ERROR
                    )
                    continue
                model_admin.log_change(
                    request, obj, f"{title}: {outcome}. Reason: {data['reason']}"
                )
                model_admin.message_user(request, f"{label(obj)}: {outcome}", messages.SUCCESS)
            return None
    else:
        form = form_class(initial={"token": action_token()})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset,
        "action": action,
        "single": single,
        "opts": model_admin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "subscriptions/admin/action_form.html", context)


# --- users, for the support staff ---------------------------------------------------------------


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


@dataclass(frozen=True)
class SupportAction:
    """A reason-gated action on users: its form, its title, the permission it needs
    ("app_label.codename") and what it does for one user with the cleaned data (returning
    a line for the staff member); ``key`` makes each change idempotent per submitted form."""

    key: str
    title: str
    form: type[ReasonForm]
    permission: str
    apply: Callable[[Any, Any, dict[str, Any], str], str]


SUPPORT_ACTIONS: dict[str, SupportAction] = {}


def support_action_register(action: SupportAction) -> None:
    """Offer ``action`` on the user list and on each user's page (called at import of an
    app's admin module)."""
    SUPPORT_ACTIONS[action.key] = action


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


def _sign_out(user: Any, staff: Any, data: dict[str, Any], key: str) -> str:
    tokens_revoke_all(user_id=user.pk, reason="staff")
    return "every token revoked (signed out everywhere)"


for _action in (
    SupportAction(
        "adjust_credits",
        "Grant or remove credits",
        AdjustCreditsForm,
        "subscriptions.adjust_credits",
        _adjust,
    ),
    SupportAction(
        "set_allowance",
        "Set a custom institutional allowance",
        AllowanceForm,
        "subscriptions.adjust_credits",
        _allowance,
    ),
    SupportAction(
        "sign_out_everywhere",
        "Sign out everywhere (revoke every token)",
        ReasonForm,
        "auth.change_user",
        _sign_out,
    ),
):
    support_action_register(_action)


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
    change_form_template = "subscriptions/admin/user_change_form.html"

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

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = dict(super().get_actions(request))
        for action in SUPPORT_ACTIONS.values():
            if request.user.has_perm(action.permission):
                actions[action.key] = (self._bulk_action(action.key), action.key, action.title)
        return actions

    def _bulk_action(self, key: str) -> Callable[..., HttpResponse | None]:
        def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
            return self._support_action(request, queryset, key)

        return run

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The buttons under the user's name: the actions this staff member may take.
        allowed = [a for a in SUPPORT_ACTIONS.values() if request.user.has_perm(a.permission)]
        context = {
            **(extra_context or {}),
            "support_actions": allowed,
            **self._credits_context(request, object_id),
        }
        return super().change_view(request, object_id, form_url, context)

    def _credits_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        """What support staff open the page for, shown above the form: the credit account
        (as stored, not rolled to a new period by looking) and the latest ledger rows."""
        if not str(object_id).isdigit():
            return {}
        account = CreditAccount.objects.filter(user_id=object_id).first()
        rows: list[dict[str, Any]] = []
        if request.user.has_perm("activities.view_ledgerentry"):
            rows = ledger_rows(
                list(ledger_for_user(user_id=int(object_id)).select_related("actor_user")[:10])
            )
        return {
            "credit_account": account,
            "account_tier": catalogue.TIERS.get(account.tier) if account else None,
            "ledger_latest": rows,
        }

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            # Refused at once anyway (inactive); revoking keeps a later reactivation from
            # bringing the old tokens back.
            tokens_revoke_all(user_id=obj.pk, reason="deactivated")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/support/<str:action>/",
                self.admin_site.admin_view(self.support_action_view),
                name="support-user-action",
            ),
            *super().get_urls(),
        ]

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        # Every password form is rate limited, this one (staff set a user's password) too.
        return password_form(super().user_change_password)(request, id, form_url)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # Adding a user sets a password: a password form like the others.
        return password_form(super().add_view)(request, form_url, extra_context)

    def support_action_view(
        self, request: HttpRequest, object_id: str, action: str
    ) -> HttpResponse:
        """The same actions from one user's page (a button under the user's name)."""
        if action not in SUPPORT_ACTIONS:
            return HttpResponseRedirect(reverse("admin:auth_user_changelist"))
        if not request.user.has_perm(SUPPORT_ACTIONS[action].permission):
            raise PermissionDenied
        user = get_object_or_404(User, pk=object_id)
        queryset = User.objects.filter(pk=user.pk)
        done_url = reverse("admin:auth_user_change", args=[user.pk])
        response = self._support_action(request, queryset, action, single=True)
        return response or HttpResponseRedirect(done_url)

    def _support_action(
        self, request: HttpRequest, queryset: QuerySet, action: str, *, single: bool = False
    ) -> HttpResponse | None:
        spec = SUPPORT_ACTIONS[action]

        def apply_to(user: Any, data: dict[str, Any]) -> str:
            return spec.apply(user, request.user, data, f"admin:{action}:{data['token']}:{user.pk}")

        return reason_action(
            self,
            request,
            queryset,
            form_class=spec.form,
            title=spec.title,
            action=action,
            apply=apply_to,
            label=lambda user: user.email,
            single=single,
        )

"""The admin site support staff use: our apps first, dj-stripe's mirror of Stripe last and
folded away (it is read-only, see billing/admin.py; Stripe's dashboard is where it changes).

Installed as the default site through ``SupportAdminConfig`` (settings.INSTALLED_APPS), the way
Django documents overriding it, so ``admin.site`` and every ``@admin.register`` use it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse

# Support staff's order: people and their credits, then the ledger, then billing.
APP_ORDER = ("auth", "subscriptions", "activities", "billing")
# Mirrors of another system: listed last, folded on the index page.
MIRROR_APPS = frozenset({"djstripe"})


def _rank(app: dict[str, Any]) -> tuple[int, int]:
    label = app["app_label"]
    if label in MIRROR_APPS:
        return (2, 0)
    if label in APP_ORDER:
        return (0, APP_ORDER.index(label))
    return (1, 0)  # anything else (a new app), alphabetical as Django has it


class SupportAdminSite(admin.AdminSite):
    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        # Built once per request: the index page asked for it three times (ours, Django's
        # index, the sidebar), and each build checks every model's permissions (dj-stripe's
        # mirror alone registers dozens).
        built: dict[str | None, list[dict[str, Any]]] = request.__dict__.setdefault(
            "_support_app_lists", {}
        )
        if app_label not in built:
            built[app_label] = sorted(super().get_app_list(request, app_label), key=_rank)
        return built[app_label]

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        apps = self.get_app_list(request)
        context = {
            "our_apps": [app for app in apps if app["app_label"] not in MIRROR_APPS],
            "mirror_apps": [app for app in apps if app["app_label"] in MIRROR_APPS],
            **(extra_context or {}),
        }
        return super().index(request, context)


class SupportAdminConfig(AdminConfig):
    default_site = "hrvstr.admin_site.SupportAdminSite"

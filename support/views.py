from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from activities.charts import bar_chart
from support import selectors


def dashboard(request: HttpRequest) -> HttpResponse:
    """The support dashboard: tiers, MRR, credit flow, failed webhooks, accounts in grace."""
    data = selectors.dashboard(now=timezone.now())
    daily = data["daily"]
    context = {
        **admin.site.each_context(request),
        **data,
        "title": "Billing dashboard",
        "granted_chart": bar_chart([(d.day, d.granted) for d in daily], label="Credits granted"),
        "spent_chart": bar_chart([(d.day, d.spent) for d in daily], label="Credits spent"),
        "daily_rows": list(reversed(daily))[:14],
    }
    return TemplateResponse(request, "support/dashboard.html", context)

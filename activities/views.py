"""The activity page: parse, call one selector, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from activities.selectors import activity_page
from hrvstr.http import AuthenticatedHttpRequest
from hrvstr.page_errors import page_errors


@require_GET
@login_required
@page_errors
def activity(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = activity_page(
        user=request.user,
        show=request.GET.get("show", "feed"),
        kind=request.GET.get("type", ""),
        page=request.GET.get("page", 1),
        now=timezone.now(),
    )
    return render(request, "activities/activity.html", context)

"""The reusable tier gates, for DRF and for Django views."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from subscriptions.access import RequiresFeature, RequiresTier, requires_feature, requires_tier
from subscriptions.tests.test_services import subscribe


class EliteReport(APIView):
    permission_classes = [IsAuthenticated, RequiresTier("elite")]

    def get(self, request):
        return Response({"ok": True})


class BulkReport(APIView):
    permission_classes = [IsAuthenticated, RequiresFeature("AlphaVantage")]

    def get(self, request):
        return Response({"ok": True})


@requires_tier("pro")
def pro_page(request):
    return HttpResponse("pro content")


@requires_feature("SEC-Institutional")
def filings_page(request):
    return HttpResponse("filings")


urlpatterns = [
    path("elite", EliteReport.as_view()),
    path("bulk", BulkReport.as_view()),
    path("pro-page", pro_page),
    path("filings", filings_page),
]

pytestmark = pytest.mark.urls(__name__)


def test_drf_gate_answers_403_with_what_is_needed(api):
    response = api.get("/elite")
    assert response.status_code == 403
    body = response.json()
    assert (body["tier"], body["feature"], body["requiredTiers"]) == (
        "free",
        "elite",
        ["elite", "institutional"],
    )
    assert body["error"]


def test_drf_feature_gate_lists_the_tiers_that_have_it(api):
    body = api.get("/bulk").json()
    assert body["feature"] == "AlphaVantage"
    assert body["requiredTiers"] == ["elite", "institutional"]


def test_gates_open_for_a_high_enough_tier(api, owner):
    subscribe(owner, "elite")
    assert api.get("/elite").status_code == 200
    assert api.get("/bulk").status_code == 200


def test_view_decorators(client, owner):
    assert client.get("/pro-page").status_code == 401
    client.force_login(owner)
    refused = client.get("/filings")
    assert refused.status_code == 403 and refused.json()["requiredTiers"][0] == "pro"
    subscribe(owner, "pro")
    assert client.get("/pro-page").content == b"pro content"


def test_an_unknown_tier_is_a_programming_error():
    with pytest.raises(ValueError):
        RequiresTier("diamond")

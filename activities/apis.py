from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activities.models import Activity, ActivityType
from activities.selectors import activities_for_user
from subscriptions.apis import AnyResponse, _bounded_int
from subscriptions.errors import InvalidAmount


def activity_as_json(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.pk,
        "activity_type": activity.activity_type,
        "title": activity.title,
        "description": activity.description,
        "symbol": activity.symbol or None,
        "created_at": activity.created_at.isoformat(),
    }


class ActivityFeedApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("type", str, required=False),
        ],
        responses={200: AnyResponse, 400: AnyResponse, 401: AnyResponse},
    )
    def get(self, request: Request) -> Response:
        page = _bounded_int(request, "page", default=1, low=1, high=100_000)
        limit = _bounded_int(request, "limit", default=10, low=1, high=100)
        activity_type = request.query_params.get("type") or None
        if activity_type and activity_type not in ActivityType.values:
            raise InvalidAmount("Unknown activity type", field="type")
        rows = activities_for_user(user_id=request.user.pk, activity_type=activity_type)
        total = rows.count()
        start = (page - 1) * limit
        items = list(rows[start : start + limit])
        pages = max(math.ceil(total / limit), 1)
        return Response(
            {
                "success": True,
                "activities": [activity_as_json(item) for item in items],
                "pagination": {
                    "currentPage": page,
                    "totalPages": pages,
                    "totalActivities": total,
                    "hasMore": page < pages,
                    "limit": limit,
                },
            }
        )

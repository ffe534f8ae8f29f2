from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from activities.models import Activity, ActivityType
from activities.selectors import activities_for_user
from hrvstr.api import AnyResponse, AuthenticatedRequest, bounded_int
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


# The feed counts a user's rows up to this many and no further: an exact COUNT over a
# million-row history is a scan of a million index entries on every page view, while the
# SPA's pager needs no more than "many" (100 pages of 10). Above the cap, ``totalActivities``
# is the cap and ``totalCapped`` says so; ``hasMore`` stays exact (one row past the page is
# fetched). Counting 1,000 index entries costs ~0.4 ms, 10,000 ~2 ms (bench/growth.py).
COUNT_CAP = 1_000


class ActivityFeedApi(APIView):
    """The SPA's activity feed, newest first: ``page``/``limit`` or the keyset ``before``.

    Page N is an OFFSET, cheap within the first ``COUNT_CAP`` rows; ``before=<id>`` (the
    previous answer's ``nextBefore``) reaches any depth at the cost of the first page.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("type", str, required=False),
            OpenApiParameter("before", int, required=False, description="keyset: rows below id"),
        ],
        responses={200: AnyResponse, 400: AnyResponse, 401: AnyResponse},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        page = bounded_int(request, "page", default=1, low=1, high=100_000)
        limit = bounded_int(request, "limit", default=10, low=1, high=100)
        activity_type = request.query_params.get("type") or None
        if activity_type and activity_type not in ActivityType.values:
            raise InvalidAmount("Unknown activity type", field="type")
        before = bounded_int(request, "before", default=0, low=0, high=2**62)
        rows = activities_for_user(user_id=request.user.pk, activity_type=activity_type)
        if before:
            rows = rows.filter(pk__lt=before)
        total = rows[: COUNT_CAP + 1].count()
        capped = total > COUNT_CAP
        total = min(total, COUNT_CAP)
        start = (page - 1) * limit
        items = list(rows[start : start + limit + 1])
        has_more = len(items) > limit
        items = items[:limit]
        return Response(
            {
                "success": True,
                "activities": [activity_as_json(item) for item in items],
                "pagination": {
                    "currentPage": page,
                    "totalPages": max(math.ceil(total / limit), 1),
                    "totalActivities": total,
                    "totalCapped": capped,
                    "hasMore": has_more,
                    "limit": limit,
                },
                "nextBefore": items[-1].pk if has_more else None,
            }
        )

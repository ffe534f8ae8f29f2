"""The framework's floor for ``bench/``: served only with ``HRVSTR_BENCH_ENDPOINTS=true``.

An authenticated DRF endpoint that does one primary-key query (simplejwt's stock
authentication fetching the user) and answers a tiny JSON body. Everything an API endpoint
pays for (middleware, DRF, JWT verification, one round trip to the database, rendering) and
nothing else, so ``bench/`` can say what share of that ceiling tier-info reaches. It stays
the stock framework, as issue 14 measured it: simplejwt's authentication and DRF's own content
negotiation, not the project's leaner ones (hrvstr/auth.py, hrvstr/negotiation.py).
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication


class FloorApi(APIView):
    authentication_classes = [JWTAuthentication]
    content_negotiation_class = DefaultContentNegotiation

    def get(self, request: Request) -> Response:
        return Response({"success": True, "data": {"id": request.user.pk}})

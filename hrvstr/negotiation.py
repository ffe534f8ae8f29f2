"""Content negotiation for the JSON API (``REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"]``).

Its own module: DRF reads the setting while ``rest_framework.views`` is being imported, so the
class must not import anything that imports DRF's views (``hrvstr.api`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class OneRendererNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, skipped where a view has one renderer (every API view: JSON).

    With one renderer, reading ``Accept`` could only choose between that renderer and a 406
    that no client wants; it cost about 3% of tier-info's CPU. The API answers JSON whatever
    ``Accept`` says (as Stripe's does). Views with several renderers (the OpenAPI schema),
    requests naming a format (``?format=``) and Accept headers with parameters (``indent=4``)
    negotiate as before, and request bodies are still matched to parsers (415 otherwise).
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        asks_a_format = format_suffix or self.settings.URL_FORMAT_OVERRIDE in request.query_params
        # Parameters ("application/json; indent=4") are the renderer's to read: DRF's way.
        has_parameters = ";" in request.headers.get("Accept", "")
        if (
            isinstance(renderers, Sequence)
            and len(renderers) == 1
            and not (asks_a_format or has_parameters)
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)

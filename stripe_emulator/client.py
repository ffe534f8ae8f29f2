"""In-process transport: stripe-python talks to an ``Emulator`` without a socket.

stripe.default_http_client = EmulatorHTTPClient(emulator)          # global API, dj-stripe
client = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emulator))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import stripe

from .core import Emulator


class EmulatorHTTPClient(stripe.HTTPClient):
    """A ``stripe.HTTPClient`` that hands each request to ``Emulator.handle``."""

    name = "stripe_emulator"

    def __init__(self, emulator: Emulator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator = emulator

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        post_data: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[bytes, int, dict[str, str]]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = post_data.encode("utf-8") if isinstance(post_data, str) else (post_data or b"")
        resp = self.emulator.handle(method, target, dict(headers or {}), body)
        return resp.body, resp.status, dict(resp.headers)

    def request_with_retries(self, method, url, headers, post_data=None, *args, **kwargs):  # noqa: ANN001,ANN201
        # no network, nothing to retry
        return self.request(method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None, *args, **kwargs):  # noqa: ANN001,ANN201
        body, status, headers = self.request(method, url, headers, post_data)
        import io

        return io.BytesIO(body), status, headers

    def close(self) -> None:
        pass

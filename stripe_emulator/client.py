"""In-process transport: stripe-python talks to an ``Emulator`` without a socket.

    stripe.default_http_client = EmulatorHTTPClient(emulator)          # global API, dj-stripe
    client = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emulator))

stripe-python's own retry logic (``request_with_retries``) is kept; it calls ``request``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Mapping
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

    # The base class annotates the body as str; every real client (requests, urllib) returns
    # bytes, as this one does, and stripe-python decodes it.
    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[bytes, int, dict[str, str]]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = post_data.encode("utf-8") if isinstance(post_data, str) else (post_data or b"")
        resp = self.emulator.handle(method, target, dict(headers or {}), body)
        return resp.body, resp.status, dict(resp.headers)

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[io.BytesIO, int, dict[str, str]]:
        body, status, resp_headers = self.request(method, url, headers, post_data)
        return io.BytesIO(body), status, resp_headers

    def close(self) -> None:
        pass

    # --- async API (stripe-python's *_async methods) -------------------------------------
    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, dict[str, str]]:
        return self.request(method, url, headers, post_data)

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterator[bytes], int, dict[str, str]]:
        body, status, resp_headers = self.request(method, url, headers, post_data)

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        return chunks(), status, resp_headers

    async def close_async(self) -> None:
        pass

    def sleep_async(self, secs: float) -> Awaitable[None]:
        return asyncio.sleep(secs)

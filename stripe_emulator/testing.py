"""Helpers for tests (pytest or not); stdlib only apart from the optional in-process client.

with running_emulator() as (emulator, server):
    stripe.api_base = server.url
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .core import Emulator


@contextmanager
def running_emulator(**options: Any) -> Iterator[tuple[Emulator, Any]]:
    """An Emulator served on a free loopback port for the duration of the block."""
    emulator = Emulator(**options)
    server = emulator.serve("127.0.0.1", 0)
    try:
        yield emulator, server
    finally:
        server.shutdown()
        emulator.close()


class WebhookSink:
    """A callable delivery target that records deliveries (and can fail on purpose)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[bytes, dict[str, str]]] = []

    def __call__(self, body: bytes, headers: dict[str, str]) -> int:
        self.received.append((body, headers))
        return self.status

    @property
    def types(self) -> list[str]:
        import json

        return [json.loads(body)["type"] for body, _ in self.received]

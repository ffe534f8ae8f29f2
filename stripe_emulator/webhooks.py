"""Webhook delivery: Stripe's signature scheme, sync or background delivery, chaos, records."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .core import Emulator

# A delivery target may be a Python callable: (body: bytes, headers: dict) -> HTTP status.
Target = Callable[[bytes, dict[str, str]], int]
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: str, secret: str, timestamp: int) -> str:
    """``Stripe-Signature`` header value: HMAC-SHA256 of "t.payload", keyed by the whsec string."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


def matches(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


class Dispatcher:
    """Delivers events to endpoints synchronously or from a background thread with retries."""

    def __init__(
        self,
        emulator: Emulator,
        mode: str = "sync",
        *,
        retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
        timeout: float = 10.0,
    ) -> None:
        if mode not in ("sync", "background"):
            raise ValueError("delivery must be 'sync' or 'background'")
        self.emulator = emulator
        self.mode = mode
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.callables: dict[str, Target] = {}
        self.chaos = False
        self.chaos_rng = random.Random(0)
        self._heap: list[tuple[float, int, dict[str, Any], dict[str, Any], int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- configuration -------------------------------------------------------------------
    def set_chaos(self, enabled: bool, seed: int | None = None) -> None:
        self.chaos = enabled
        if seed is not None:
            self.chaos_rng.seed(seed)

    # --- dispatch ------------------------------------------------------------------------
    def dispatch(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Deliver (event, endpoint) pairs; endpoint is {"id", "url", "secret"}."""
        if not batch:
            return
        batch = list(batch)
        if self.chaos:
            dupes = [pair for pair in batch if self.chaos_rng.random() < 0.3]
            batch.extend(dupes)
            self.chaos_rng.shuffle(batch)
        if self.mode == "sync":
            for event, endpoint in batch:
                self.attempt(event, endpoint, 1)
            return
        self._start()
        with self._cond:
            for event, endpoint in batch:
                heapq.heappush(self._heap, (time.monotonic(), next(self._seq), event, endpoint, 1))
            self._cond.notify_all()

    def attempt(self, event: dict[str, Any], endpoint: dict[str, Any], attempt: int) -> int | None:
        """One delivery attempt; records it and returns the HTTP status (None: no response)."""
        body = json.dumps(event, separators=(",", ":"))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(body, endpoint["secret"], int(time.time())),
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
        }
        status: int | None = None
        error: str | None = None
        target = self.callables.get(endpoint["id"])
        try:
            if target is not None:
                status = int(target(body.encode("utf-8"), headers))
            elif not is_loopback_url(endpoint["url"]):
                error = "refused: only loopback webhook URLs are allowed"
            else:
                req = urllib.request.Request(
                    endpoint["url"], data=body.encode("utf-8"), headers=headers, method="POST"
                )
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # noqa: BLE001 - a receiver's failure is data, not a crash
            error = f"{type(exc).__name__}: {exc}"
        self.emulator._record_delivery(
            {
                "event": event["id"],
                "type": event["type"],
                "endpoint": endpoint["id"],
                "url": endpoint["url"],
                "attempt": attempt,
                "status": status,
                "ok": status is not None and 200 <= status < 300,
                "error": error,
                "time": time.time(),
            }
        )
        return status

    # --- background worker ---------------------------------------------------------------
    def _start(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="stripe-emulator-webhooks", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, event, endpoint, attempt = heapq.heappop(self._heap)
                self._in_flight += 1
            status = self.attempt(event, endpoint, attempt)
            with self._cond:
                self._in_flight -= 1
                failed = status is None or not 200 <= status < 300
                if failed and attempt <= len(self.retry_delays):
                    due = time.monotonic() + self.retry_delays[attempt - 1]
                    heapq.heappush(self._heap, (due, next(self._seq), event, endpoint, attempt + 1))
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or in flight (retries included). True if drained."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

"""The loopback HTTP server (``ThreadingHTTPServer``) around ``Emulator.handle``."""

from __future__ import annotations

import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from .core import Response
from .webhooks import is_loopback_host

if TYPE_CHECKING:
    from .core import Emulator


class RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator/1.0"

    def _serve(self) -> None:
        client_host = self.client_address[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not is_loopback_host(client_host):  # defence in depth: we only bind loopback anyway
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.server.latency and self.path.startswith("/v1/"):
            # Stripe's API answers in 150-400 ms; the bench measures the app under it.
            time.sleep(self.server.latency)
        try:
            resp = self.server.emulator.handle(self.command, self.path, dict(self.headers), body)
        except Exception:  # noqa: BLE001 - an emulator bug must not look like a network failure
            self.log_error("emulator error:\n%s", traceback.format_exc())
            resp = Response.of_json(
                500, {"error": {"type": "api_error", "message": "Stripe emulator internal error"}}
            )
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_DELETE = do_HEAD = _serve  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.verbose:
            super().log_message(format, *args)

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002
        super().log_message(format, *args)  # errors are always shown


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        emulator: Emulator,
        host: str,
        port: int,
        verbose: bool = False,
        latency: float = 0.0,
    ) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"refusing to listen on {host!r}: the emulator binds loopback only")
        self.emulator = emulator
        self.verbose = verbose
        self.latency = max(float(latency), 0.0)  # seconds added to every /v1/ API call
        if ":" in host:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__((host, port), RequestHandler)
        self.thread: threading.Thread | None = None
        self.ticker: threading.Thread | None = None
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        self.thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name="stripe-emulator", daemon=True
        )
        self.thread.start()
        return self

    def shutdown(self) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join(timeout=5)
        super().shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    verbose: bool = False,
    tick: float | None = None,
    latency: float = 0.0,
) -> EmulatorServer:
    """Start serving in a background thread. The emulator's base_url follows the bound port.

    With ``tick`` (seconds), a ticker runs what falls due on the wall clock (renewals, retries,
    session expiry) as real time passes, as Stripe would; tests leave it off and move clocks.
    With ``latency`` (seconds), every API call (``/v1/...``) waits that long before it is
    handled, as the real API's round trip would; pages and ``/_emulator/`` do not.
    """
    server = EmulatorServer(emulator, host, port, verbose, latency)
    emulator.base_url = server.url
    server.start()
    if tick:
        server.ticker = threading.Thread(
            target=_tick, args=(server, tick), name="stripe-emulator-ticker", daemon=True
        )
        server.ticker.start()
    return server


def _tick(server: EmulatorServer, every: float) -> None:
    while not server.stopped.wait(every):
        try:
            server.emulator.run_due()
        except Exception:  # noqa: BLE001 - keep ticking; the error is logged
            traceback.print_exc()

"""gunicorn's threaded worker with a deadline for reading each request.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as its first bytes
arrive; the thread then reads the headers and (when the app asks) the body with a blocking
socket and no time limit. A client sending one byte every few seconds holds that thread for
as long as it likes, and enough of them hold every thread: the health check and everyone
else wait. Here the headers and body of each request must arrive within
``GUNICORN_REQUEST_READ_TIMEOUT`` seconds (10) of the thread picking the request up; a client
too slow for that is cut off (``hrvstr.wsgi`` answers 408 if the app was already reading the
body), and the thread is free again.

Together with ``worker_connections = threads`` (gunicorn.conf.py: a worker whose threads are
all busy stops accepting, so another worker takes the next connection), fewer slow clients
than threads in all cannot delay anyone else, and no slow client holds a thread for longer
than the deadline. Beyond that a buffering reverse proxy in front is the answer (README).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

logger = logging.getLogger("gunicorn.error")

READ_TIMEOUT = float(os.environ.get("GUNICORN_REQUEST_READ_TIMEOUT", "10"))


class RequestReadTimeout(NoMoreData):
    """The client did not send its request (headers and body) in time.

    A ``NoMoreData`` so that gunicorn treats it as the client going away (no traceback), and
    an ``OSError`` so that a WSGI app reading the body sees a failed read.
    """

    def __str__(self) -> str:
        return f"request not received within {READ_TIMEOUT:g} s"


class DeadlineSocket:
    """The socket as the request parser sees it: every ``recv`` bounded by one deadline."""

    def __init__(self, sock: socket.socket, client: Any) -> None:
        self.sock = sock
        self.client = client
        self.deadline = time.monotonic() + READ_TIMEOUT

    def restart(self) -> None:
        self.deadline = time.monotonic() + READ_TIMEOUT

    def recv(self, size: int, *args: Any) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size, *args)
        except TimeoutError:
            raise self._timed_out() from None
        finally:
            self.sock.settimeout(None)  # blocking again, as gthread expects

    def _timed_out(self) -> RequestReadTimeout:
        logger.info("%s: request not received within %g s, closing", self.client, READ_TIMEOUT)
        return RequestReadTimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class DeadlineThreadWorker(ThreadWorker):
    """``gthread`` whose request reads share one deadline per request (see the module)."""

    def handle(self, conn: Any) -> Any:
        parser = getattr(conn, "parser", None)
        if parser is not None and isinstance(parser.unreader.sock, DeadlineSocket):
            parser.unreader.sock.restart()  # the next request on a kept-alive connection
        else:
            original_init = conn.init

            def init() -> None:
                # The parser (and its socket reader) exists once the connection is set up.
                original_init()
                unreader = getattr(conn.parser, "unreader", None)
                if unreader is not None and not isinstance(unreader.sock, DeadlineSocket):
                    unreader.sock = DeadlineSocket(unreader.sock, conn.client)

            conn.init = init
        return super().handle(conn)

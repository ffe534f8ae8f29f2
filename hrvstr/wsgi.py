"""
WSGI config for hrvstr project: the application gunicorn serves (see gunicorn.conf.py).

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hrvstr.settings")

logger = logging.getLogger("hrvstr.wsgi")


class RequestBodyLimits:
    """Read a request's body whole, bounded in size, before Django sees the request.

    A body over ``HRVSTR_MAX_REQUEST_BYTES`` (1 MiB) is refused unread with 413: nothing we
    serve takes more (Stripe's events are a few KB). A body the client fails to send in time
    (the server's read deadline, hrvstr.gunicorn_worker) or breaks off is answered 408 here,
    not a 500 from deep inside a view, and no database connection was taken for it.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raw = environ.get("CONTENT_LENGTH") or ""
        length = int(raw) if raw.isascii() and raw.isdigit() else 0
        if length > self.max_bytes:
            return self._refuse(start_response, "413 Content Too Large", "Request body too large")
        if length:
            try:
                body = self._read(environ["wsgi.input"], length)
            except OSError as exc:
                logger.info("request body not received: %s", exc)
                return self._refuse(start_response, "408 Request Timeout", "Request not received")
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    @staticmethod
    def _read(stream: Any, length: int) -> bytes:
        chunks, left = [], length
        while left:
            chunk = stream.read(min(left, 64 * 1024))
            if not chunk:
                raise OSError(f"the client sent {length - left} of {length} bytes")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _refuse(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
        body = b'{"success": false, "error": "' + message.encode() + b'", "code": "bad_request"}'
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        return [body]


def _max_bytes() -> int:
    from django.conf import settings

    return settings.HRVSTR_MAX_REQUEST_BYTES


django_application = get_wsgi_application()
application = RequestBodyLimits(django_application, _max_bytes())

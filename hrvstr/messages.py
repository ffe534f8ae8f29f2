"""Django's messages middleware, with the storage made on first use.

Django's ``MessageMiddleware`` builds the storage for every request (a cookie signer and a
session reader included), although only pages that show or add a message use it: on the JSON
API that was about 3% of tier-info's CPU (bench/tier_info.py, sampled with py-spy). Here the
storage is made when a view or template first touches ``request._messages``, and a request
that never did has nothing to save: no message was added and none was read, so the cookie and
session stay as they came.
"""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        storage = getattr(request, "_messages", None)
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return response
        return super().process_response(request, response)

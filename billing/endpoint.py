"""Our webhook URL, ``/api/billing/webhook``, in front of dj-stripe's processing.

dj-stripe keeps webhook secrets in ``WebhookEndpoint`` rows and serves ``/stripe/webhook/<uuid>/``.
We provision one row per mode from the environment (``STRIPE_TEST_WEBHOOK_SECRET`` /
``STRIPE_LIVE_WEBHOOK_SECRET``) and hand every delivery to dj-stripe's own
``WebhookEventTrigger.from_request``: signature check, storage with traceback, de-duplication
by event id, sync, then our receivers.

One shortcut: a correctly signed redelivery of an event dj-stripe already stored is answered
200 at once, without a second trigger row (dj-stripe would store one, find the event and do
nothing else). Stripe redelivers whole bursts after a timeout, and three commits per
duplicate made them barely cheaper than new events; see bench/webhooks.py.
"""

from __future__ import annotations

import json
import logging
import uuid

import stripe
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe.enums import WebhookEndpointValidation
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger

from billing import gateway

logger = logging.getLogger(__name__)


def webhook_secret() -> str:
    if gateway.live_mode():
        return settings.STRIPE_LIVE_WEBHOOK_SECRET
    return settings.STRIPE_TEST_WEBHOOK_SECRET


def webhook_endpoint_ensure() -> WebhookEndpoint | None:
    """The WebhookEndpoint row for the current mode, created or updated from settings."""
    secret = webhook_secret()
    if not secret:
        return None
    live = gateway.live_mode()
    endpoint_id = f"hrvstr_{'live' if live else 'test'}"
    endpoint = WebhookEndpoint.objects.filter(id=endpoint_id).first()
    if endpoint is not None and endpoint.secret == secret:
        return endpoint
    defaults = dict(
        secret=secret,
        djstripe_uuid=uuid.uuid5(uuid.NAMESPACE_URL, f"hrvstr:{endpoint_id}"),
        api_version=stripe.api_version,
        enabled_events=["*"],
        status="enabled",
        url=f"{settings.SITE_URL}/api/billing/webhook",
        livemode=live,
    )
    with transaction.atomic():
        endpoint, _ = WebhookEndpoint.objects.update_or_create(id=endpoint_id, defaults=defaults)
    return endpoint


def already_processed(request: HttpRequest, endpoint: WebhookEndpoint, event: dict) -> bool:
    """Whether this is a correctly signed redelivery of an event dj-stripe has stored.

    The signature is checked exactly as dj-stripe checks it (same secret, same tolerance)
    before the event id is trusted; anything else (a bad signature, another validation
    method) goes the full way through dj-stripe, which records and refuses it.
    """
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return False
    if endpoint.djstripe_validation_method != WebhookEndpointValidation.verify_signature:
        return False
    try:
        stripe.WebhookSignature.verify_header(
            request.body.decode("utf-8"),
            request.headers["stripe-signature"],
            endpoint.secret,
            endpoint.djstripe_tolerance,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return False
    # Stored only once processing committed (dj-stripe inserts it in the same transaction as
    # our receivers' writes), so a stored event has had all its effects.
    return Event.objects.filter(id=event_id).exists()


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"success": False, "error": message}, status=status)


def _busy() -> JsonResponse:
    response = _error(503, "Busy, retry")
    response["Retry-After"] = "5"
    return response


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if "stripe-signature" not in request.headers:
        logger.warning("webhook without Stripe-Signature from %s", request.META.get("REMOTE_ADDR"))
        return _error(400, "Missing Stripe-Signature header")
    try:
        endpoint = webhook_endpoint_ensure()
    except (OperationalError, InterfaceError):
        # The database is unreachable (e.g. restarting): Stripe retries a 503 later.
        logger.warning("webhook: database unavailable", exc_info=True)
        return _busy()
    if endpoint is None:
        return _error(503, "Webhook secret not configured")
    try:
        event = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        logger.warning("webhook with a malformed body")
        return _error(400, "Malformed JSON")
    if not isinstance(event, dict) or bool(event.get("livemode")) != bool(endpoint.livemode):
        logger.warning("webhook for the wrong mode or not an event object")
        return _error(400, "Event mode does not match this endpoint")
    if already_processed(request, endpoint, event):
        return JsonResponse({"received": True, "duplicate": True})
    try:
        trigger = WebhookEventTrigger.from_request(request, webhook_endpoint=endpoint)
    except (OperationalError, InterfaceError):
        logger.exception("webhook %s: database busy", event.get("id"))
        return _busy()
    except stripe.InvalidRequestError as exc:
        if exc.code != "resource_missing":
            logger.exception("webhook %s (%s) failed", event.get("id"), event.get("type"))
            return _error(500, "Processing failed; Stripe will retry")
        # dj-stripe asked Stripe about an object the event names (its customer, say) and
        # Stripe has none: the event cannot be about anything of ours (a forgery signed with
        # a leaked secret, or an object deleted since). Nothing was applied; a retry would
        # fail the same way forever, so it is acknowledged (issue 11).
        logger.warning(
            "webhook %s (%s): Stripe has no %s; acknowledged without effect",
            event.get("id"),
            event.get("type"),
            exc.param or "object",
        )
        return JsonResponse({"received": True, "ignored": "resource_missing"})
    except Exception:
        logger.exception("webhook %s (%s) failed", event.get("id"), event.get("type"))
        return _error(500, "Processing failed; Stripe will retry")
    if not trigger.valid:
        logger.warning("webhook %s: invalid signature", event.get("id"))
        return _error(400, "Invalid signature")
    return JsonResponse({"received": True, "trigger": trigger.id})

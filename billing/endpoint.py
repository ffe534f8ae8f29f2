"""Our webhook URL, ``/api/billing/webhook``, in front of dj-stripe's processing.

dj-stripe keeps webhook secrets in ``WebhookEndpoint`` rows; its ``/stripe/webhook/<uuid>/`` is
served here too (``stripe_webhook_by_uuid``), behind the same checks.
We provision one row per mode from the environment (``STRIPE_TEST_WEBHOOK_SECRET`` /
``STRIPE_LIVE_WEBHOOK_SECRET``). A delivery is stored as dj-stripe stores it (a valid
``WebhookEventTrigger`` row) and its processing (dj-stripe's sync, then our receivers) is
enqueued in the SAME statement (billing/tasks.py), which also skips an event already
processed: the answer comes in a few milliseconds, and no stored delivery is left without its
job. Without a queue (SQLite, tests) the same processing runs here once the row is committed.

Before any of that, the size and the signature are checked here: dj-stripe stores every
post (body and headers) before its own signature check, so unsigned posts would fill the
database. Refused posts cost a log line and no row, and are rate limited per address.
A POST to our URL reaches its view straight after Django's SecurityMiddleware, past the
middleware that serves browsers (``WebhookFastPath``, listed in settings.MIDDLEWARE).

One shortcut: a correctly signed redelivery of an event dj-stripe already stored is answered
200 at once, without a second trigger row (dj-stripe would store one, find the event and do
nothing else). Stripe redelivers whole bursts after a timeout, and three commits per
duplicate made them barely cheaper than new events; see bench/webhooks.py.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

import stripe
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import get_script_prefix, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_ratelimit import ALL
from django_ratelimit.core import get_usage
from djstripe import signals as djstripe_signals
from djstripe.enums import WebhookEndpointValidation
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import get_remote_ip

from billing import gateway, tasks, webhook_events
from hrvstr.http import client_ip
from hrvstr.parsing import json_loads

logger = logging.getLogger(__name__)
# The rate-limit group counting an address's refused deliveries.
REFUSED_GROUP = "billing.stripe-webhook.refused"


def webhook_secret() -> str:
    if gateway.live_mode():
        return settings.STRIPE_LIVE_WEBHOOK_SECRET
    return settings.STRIPE_TEST_WEBHOOK_SECRET


# Each process keeps the endpoint row it last read (or wrote) for a minute: a delivery then
# costs no SELECT of it. The row only changes when the settings do (checked on every call),
# or in the admin (seen within the minute).
ENDPOINT_CACHE_SECONDS = 60.0
_endpoints: dict[str, tuple[float, WebhookEndpoint]] = {}


def webhook_endpoint_forget() -> None:
    """Drop the cached endpoint rows (after a failed write that named one; in tests)."""
    _endpoints.clear()


def webhook_endpoint_ensure() -> WebhookEndpoint | None:
    """The WebhookEndpoint row for the current mode, created or updated from settings."""
    secret = webhook_secret()
    if not secret:
        return None
    live = gateway.live_mode()
    endpoint_id = f"hrvstr_{'live' if live else 'test'}"
    cached = _endpoints.get(endpoint_id)
    if (
        cached is not None
        and cached[1].secret == secret
        and time.monotonic() - cached[0] < ENDPOINT_CACHE_SECONDS
    ):
        return cached[1]
    endpoint = WebhookEndpoint.objects.filter(id=endpoint_id).first()
    if endpoint is None or endpoint.secret != secret or not endpoint.enabled_events:
        endpoint = _endpoint_write(endpoint_id, secret=secret, live=live)
    _endpoints[endpoint_id] = (time.monotonic(), endpoint)
    return endpoint


def _endpoint_write(endpoint_id: str, *, secret: str, live: bool) -> WebhookEndpoint:
    defaults = dict(
        secret=secret,
        djstripe_uuid=uuid.uuid5(uuid.NAMESPACE_URL, f"hrvstr:{endpoint_id}"),
        api_version=stripe.api_version,
        enabled_events=list(webhook_events.enabled_events()),
        status="enabled",
        url=f"{settings.SITE_URL}/api/billing/webhook",
        livemode=live,
    )
    with transaction.atomic():
        endpoint, _ = WebhookEndpoint.objects.update_or_create(id=endpoint_id, defaults=defaults)
    return endpoint


def signature_valid(*, payload: str, header: str, endpoint: WebhookEndpoint) -> bool:
    """Whether ``header`` signs ``payload`` with the endpoint's secret, as dj-stripe checks it.

    Same secret, same tolerance: what passes here passes dj-stripe's own check a moment later.
    """
    if endpoint.djstripe_validation_method != WebhookEndpointValidation.verify_signature:
        # Not a method we configure; dj-stripe's own validation decides (and stores the row).
        return True
    try:
        stripe.WebhookSignature.verify_header(
            payload, header, endpoint.secret, endpoint.djstripe_tolerance
        )
    except stripe.SignatureVerificationError:
        return False
    return True


def already_processed(event: dict) -> bool:
    """Whether dj-stripe has stored this (correctly signed) event: then it had all its effects."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return False
    # Stored only once processing committed (dj-stripe inserts it in the same transaction as
    # our receivers' writes), so a stored event has had all its effects.
    return Event.objects.filter(id=event_id).exists()


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"success": False, "error": message}, status=status)


def _refused(request: HttpRequest, status: int, message: str, why: str) -> JsonResponse:
    """A refused delivery: one log line, no row, and one more strike for the address.

    Past ``STRIPE_WEBHOOK_REFUSED_RATE`` strikes the answer is 429 with Retry-After. Only
    refusals are counted, so Stripe's signed deliveries never touch the limiter (nor pay for
    its cache round trips).
    """
    address = client_ip(request)
    usage = get_usage(
        request,
        group=REFUSED_GROUP,
        key="ip",
        rate=settings.STRIPE_WEBHOOK_REFUSED_RATE,
        method=ALL,
        increment=True,
    )
    if usage is not None and usage["should_limit"]:
        status, message = 429, "Too many refused deliveries from this address"
    logger.warning("webhook refused (%s) from %s: %s", status, address, why)
    response = _error(status, message)
    if status == 429:
        # django-ratelimit counts fixed windows: at a window's last second time_left is 0.
        response["Retry-After"] = str(max(1, usage["time_left"]) if usage else 60)
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's would be a 2nd line
    return response


def _busy() -> JsonResponse:
    response = _error(503, "Busy, retry")
    response["Retry-After"] = "5"
    return response


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's deliveries to ``/api/billing/webhook``, for this mode's endpoint."""
    return _receive(
        request, webhook_endpoint_ensure, missing=(503, "Webhook secret not configured")
    )


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def stripe_webhook_by_uuid(request: HttpRequest, uuid: uuid.UUID) -> HttpResponse:
    """dj-stripe's own URL, ``/stripe/webhook/<uuid>/``, behind the same checks.

    dj-stripe's view stores whatever carries a Stripe-Signature header, and our endpoint's
    uuid is derived from a public string: served as it was, it was a way around every check
    below. The uuid still selects the endpoint (and its secret).
    """
    return _receive(
        request,
        lambda: WebhookEndpoint.objects.filter(djstripe_uuid=uuid).first(),
        missing=(404, "No such webhook endpoint"),
    )


def _receive(
    request: HttpRequest,
    find_endpoint: Callable[[], WebhookEndpoint | None],
    *,
    missing: tuple[int, str],
) -> HttpResponse:
    """Stripe's deliveries. Nothing is stored before the size and the signature are checked.

    dj-stripe stores a ``WebhookEventTrigger`` with the whole body and headers *before* it
    checks the signature, so anyone could fill the database with unsigned posts (2.5 MB each).
    Refusals (too big, unsigned, badly signed, malformed) cost one log line and no row; an
    address that keeps sending them is answered 429.
    """
    limit = settings.STRIPE_WEBHOOK_MAX_BYTES
    if _content_length(request) > limit:
        return _refused(request, 413, "Payload too large", f"{_content_length(request)} bytes")
    if "stripe-signature" not in request.headers:
        return _refused(request, 400, "Missing Stripe-Signature header", "no signature")
    try:
        endpoint = find_endpoint()
    except (OperationalError, InterfaceError):
        # The database is unreachable (e.g. restarting): Stripe retries a 503 later.
        logger.warning("webhook: database unavailable", exc_info=True)
        return _busy()
    if endpoint is None:
        status, message = missing
        return (
            _error(status, message)
            if status >= 500
            else _refused(request, status, message, message)
        )
    try:
        payload = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return _refused(request, 400, "Malformed body", "not UTF-8")
    if len(payload) > limit:  # no Content-Length, or a lying one
        return _refused(request, 413, "Payload too large", f"{len(payload)} characters")
    if not signature_valid(
        payload=payload, header=request.headers["stripe-signature"], endpoint=endpoint
    ):
        return _refused(request, 400, "Invalid signature", "bad signature")
    try:
        event = json_loads(payload)
    except ValueError:
        return _refused(request, 400, "Malformed JSON", "malformed JSON")
    if not isinstance(event, dict) or bool(event.get("livemode")) != bool(endpoint.livemode):
        return _refused(
            request, 400, "Event mode does not match this endpoint", "wrong mode or not an event"
        )
    if not webhook_events.wanted(str(event.get("type"))):
        # Signed, but a type we neither act on nor show (an endpoint subscribed to "*"):
        # acknowledged, not stored, no dj-stripe sync and no Stripe call.
        return JsonResponse({"received": True, "ignored": True})
    if tasks.queue_enabled():
        return _store_and_enqueue(request, endpoint=endpoint, event=event, payload=payload)
    if already_processed(event):
        return JsonResponse({"received": True, "duplicate": True})
    # Inline mode (no queue): store the delivery, then process it once it is committed, and
    # answer 500 on a failure so Stripe retries (the trigger keeps the traceback for the admin).
    try:
        with transaction.atomic():
            trigger = _trigger_store(request, endpoint=endpoint, event=event)
    except DatabaseError:
        logger.exception("webhook %s: database busy", event.get("id"))
        return _busy()
    if not trigger.valid:
        # Our check passed a moment ago: the tolerance ran out in between (stored, as
        # dj-stripe stores it).
        logger.warning("webhook %s: invalid signature", event.get("id"))
        return _error(400, "Invalid signature")
    try:
        tasks.webhook_process(trigger_id=trigger.id)
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
    return JsonResponse({"received": True, "trigger": trigger.id})


class WebhookFastPath:
    """Middleware: Stripe's POSTs to ``/api/billing/webhook`` go straight to their view.

    Listed right after Django's SecurityMiddleware, whose TLS redirect and headers still
    apply. What it skips serves browsers: static files, CORS, the session and the user,
    CSRF (the view is exempt), messages, framing and CSP headers for a page, and URL
    resolution. None of it changes what Stripe is answered, and together they were almost
    half the app's CPU for a delivery (in-process, one thread: 0.64-0.70 ms a delivery
    through them, 0.35-0.44 ms past them; bench/task_queue.py measures the intake served).
    Anything else at that path (another method, a trailing slash) is routed as usual and
    answered 405 or 404 in JSON.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # The path as ``path_info`` reads it: without the script prefix of a deployment
        # mounted below the root (reverse() includes it once a request has set it).
        self.path = "/" + reverse("stripe-webhook").removeprefix(get_script_prefix())
        # Resolved once: the URL conf stays the one place that says which view serves it.
        self.view = resolve(self.path).func

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path_info == self.path:
            response = self.view(request)
            # As CommonMiddleware sets it on every other answer.
            response["Content-Length"] = str(len(response.content))
            return response
        return self.get_response(request)


def _store_and_enqueue(
    request: HttpRequest, *, endpoint: WebhookEndpoint, event: dict, payload: str
) -> HttpResponse:
    """Queue mode: the verified delivery and its job, one statement (billing/tasks.py).

    The signature was checked above with dj-stripe's own check, secret and tolerance, so the
    row is stored valid without checking it a second time.
    """
    event_id = str(event.get("id"))
    try:
        trigger_id = tasks.webhook_store_and_enqueue(
            endpoint=endpoint,
            event=event,
            body=payload,
            headers_json=json.dumps(dict(request.headers)),
            remote_ip=get_remote_ip(request),
        )
    except DatabaseError:
        # Nothing was committed (neither the row nor its job): Stripe retries a 503. The
        # endpoint row is read again next time, in case it was the row that failed.
        logger.exception("webhook %s: database busy", event_id)
        webhook_endpoint_forget()
        return _busy()
    if trigger_id is None:
        # Processed already, or its job is waiting: that job does the work. No second row.
        return JsonResponse({"received": True, "duplicate": True, "queued": True})
    return JsonResponse({"received": True, "trigger": trigger_id, "queued": True})


def _trigger_store(
    request: HttpRequest, *, endpoint: WebhookEndpoint, event: dict
) -> WebhookEventTrigger:
    """The delivery as dj-stripe stores it (``WebhookEventTrigger.from_request``'s row and
    validation), without processing it: that is the task's job (billing/tasks.py)."""
    trigger = WebhookEventTrigger(
        headers=dict(request.headers),
        body=request.body.decode("utf-8"),
        remote_ip=get_remote_ip(request),
        stripe_trigger_account=endpoint.djstripe_owner_account,
        webhook_endpoint=endpoint,
    )
    djstripe_signals.webhook_pre_validate.send(sender=WebhookEventTrigger, instance=trigger)
    # verify_signature (ours): the signature again, no Stripe call.
    trigger.valid = trigger.validate(secret=endpoint.secret, api_key=tasks._api_key(trigger))
    djstripe_signals.webhook_post_validate.send(
        sender=WebhookEventTrigger, instance=trigger, valid=trigger.valid
    )
    trigger.save()
    return trigger

"""What unsigned, oversized and abusive posts to the webhook URL cost us (issue 12, item 2).

dj-stripe stores a WebhookEventTrigger (whole body and headers) before it checks the
signature; our endpoint checks size and signature first, so a refused post costs one log line
and no row, and an address that keeps posting them gets 429.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from djstripe.models import WebhookEventTrigger

from billing.endpoint import webhook_endpoint_ensure
from billing.tests.harness import event_body, post, sign

POSTS = 100
PADDING = 100 * 1024  # each post carries 100 KB, a fraction of what an attacker would send


def rows_in_every_table() -> dict[str, int]:
    counts = {}
    for model in apps.get_models():
        counts[model._meta.db_table] = model._default_manager.count()
    return counts


def cache_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM hrvstr_cache")
        return cursor.fetchone()[0]


def bytes_stored() -> int:
    return sum(
        len(trigger.body) + len(json.dumps(trigger.headers))
        for trigger in WebhookEventTrigger.objects.all()
    )


@pytest.mark.parametrize("signature", [None, "t=1,v1=" + "0" * 64], ids=["unsigned", "forged"])
def test_a_hundred_unsigned_posts_write_no_row_and_log_one_line_each(
    stripe_harness, signature, caplog, settings
):
    settings.RATELIMIT_ENABLE = False  # the cost of each post itself; the limit is tested below
    webhook_endpoint_ensure()  # provisioned at the first delivery of a running site
    body = event_body("invoice.paid", description="x" * PADDING)
    before, cache_before = rows_in_every_table(), cache_rows()
    client = Client(REMOTE_ADDR="203.0.113.66")
    with caplog.at_level(logging.INFO):
        statuses = {post(client, body, signature).status_code for _ in range(POSTS)}
    after = rows_in_every_table()
    written = {
        table: after[table] - before[table] for table in after if after[table] != before[table]
    }
    print(
        f"\n{POSTS} {'unsigned' if signature is None else 'forged'} posts of {len(body):,} bytes: "
        f"rows written {sum(written.values())} {written or ''}, "
        f"bytes stored in triggers {bytes_stored():,}"
    )
    assert statuses == {400}
    assert written == {}
    assert cache_rows() == cache_before
    lines = [r for r in caplog.records if r.name != "django.db.backends"]
    assert len(lines) == POSTS, [r.getMessage() for r in lines[:5]]


def test_an_oversized_post_is_refused_unread(stripe_harness, caplog):
    body = event_body("invoice.paid", description="x" * (2 * 1024 * 1024))  # under Django's cap
    before = rows_in_every_table()
    with caplog.at_level(logging.INFO):
        response = post(Client(), body, sign(body))
    assert response.status_code == 413
    assert rows_in_every_table() == before
    assert len(caplog.records) == 1 and "413" in caplog.records[0].getMessage()


def test_the_size_limit_is_a_setting(stripe_harness, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 200
    body = event_body()
    assert len(body) > 200
    assert post(Client(), body, sign(body)).status_code == 413


def test_an_address_that_keeps_sending_refused_posts_is_answered_429(
    stripe_harness, rate_limits_on
):
    rate_limits_on.STRIPE_WEBHOOK_REFUSED_RATE = "5/m"
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    statuses = [post(attacker, event_body(), "t=1,v1=00").status_code for _ in range(7)]
    assert statuses == [400] * 5 + [429] * 2
    refused = post(attacker, event_body(), None)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # Stripe itself (signed) is never counted nor refused, even from the same address.
    body = event_body()
    assert post(attacker, body, sign(body)).status_code == 200
    # Another address is not affected.
    assert post(Client(REMOTE_ADDR="203.0.113.10"), event_body(), None).status_code == 400
    assert WebhookEventTrigger.objects.count() == 1


@pytest.mark.parametrize(
    "nested", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000]
)
def test_deeply_nested_json_to_the_webhook_is_a_400(stripe_harness, nested):
    # Correctly signed, so it is the parser that must cope, not the signature check.
    assert post(Client(), nested, sign(nested)).status_code == 400
    assert not WebhookEventTrigger.objects.exists()


def test_a_signed_delivery_still_goes_through_and_duplicates_are_answered_early(stripe_harness):
    body = event_body()
    assert post(Client(), body, sign(body)).status_code == 200
    again = post(Client(), body, sign(body))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert WebhookEventTrigger.objects.count() == 1


def test_dj_stripes_own_url_is_behind_the_same_checks(stripe_harness, caplog):
    """dj-stripe's /stripe/webhook/<uuid>/ stored any post with a Stripe-Signature header,
    and our endpoint's uuid is derived from a public string."""
    endpoint = webhook_endpoint_ensure()
    assert endpoint is not None  # the test settings have a webhook secret
    url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    body = event_body("invoice.paid", description="x" * PADDING)
    client = Client()
    with caplog.at_level(logging.INFO):
        for _ in range(10):
            response = client.post(
                url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
            )
            assert response.status_code == 400
    assert not WebhookEventTrigger.objects.exists()
    assert len(caplog.records) == 10
    unknown = client.post(
        "/stripe/webhook/00000000-0000-0000-0000-000000000000/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )
    assert unknown.status_code == 404
    # A correctly signed delivery to it is processed as before.
    body = event_body()
    signed = client.post(
        url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )
    assert signed.status_code == 200 and WebhookEventTrigger.objects.count() == 1

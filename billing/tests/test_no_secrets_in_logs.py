"""Nothing secret reaches the logs: not the Stripe key, the webhook secret, JWTs or passwords."""

from __future__ import annotations

import logging

from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, buy_bundle, subscribe_pro


def test_a_whole_customer_journey_logs_no_secret(api, owner, stripe_harness, caplog, settings):
    from subscriptions.tokens import tokens_issue

    caplog.set_level(logging.DEBUG)
    token = tokens_issue(user=owner).access
    subscribe_pro(api, stripe_harness)
    buy_bundle(api, stripe_harness)
    api.post("/api/billing/change-plan", {"tier": "elite"}, format="json")
    stripe_harness.deliver()
    api.post("/api/auth/token", {"email": owner.email, "password": "hunter2-wrong"}, format="json")
    # A failing delivery logs its traceback: still no secret in it.
    bad = stripe_harness.delivered[0]
    stripe_harness.client.post(
        "/api/billing/webhook",
        data=bad.body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=bad.headers["Stripe-Signature"].replace("v1=", "v1=0"),
    )
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert logged  # the journey did log
    for secret in (SECRET_KEY, WEBHOOK_SECRET, settings.SECRET_KEY, token, "hunter2-wrong"):
        assert secret not in logged

"""Start-up checks that keep test and live Stripe keys apart."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)


@checks.register(checks.Tags.security, deploy=False)
def stripe_keys_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    live = settings.STRIPE_LIVE_MODE
    live_key = settings.STRIPE_LIVE_SECRET_KEY
    test_key = settings.STRIPE_TEST_SECRET_KEY
    if live and not live_key.startswith(("sk_live_", "rk_live_")):
        errors.append(
            checks.Error(
                "STRIPE_LIVE_MODE is on but STRIPE_LIVE_SECRET_KEY is not a live key",
                hint="Set STRIPE_LIVE_SECRET_KEY=sk_live_... or turn STRIPE_LIVE_MODE off.",
                id="billing.E001",
            )
        )
    if live and settings.DEBUG:
        errors.append(
            checks.Error(
                "Live Stripe keys must not be used with DEBUG on",
                hint="Turn DEBUG off, or STRIPE_LIVE_MODE off for development.",
                id="billing.E002",
            )
        )
    if test_key and not test_key.startswith(("sk_test_", "rk_test_")):
        errors.append(
            checks.Error(
                "STRIPE_TEST_SECRET_KEY is not a test key",
                hint="A live key never goes in STRIPE_TEST_SECRET_KEY.",
                id="billing.E003",
            )
        )
    if live and (settings.STRIPE_LIVE_WEBHOOK_SECRET == settings.STRIPE_TEST_WEBHOOK_SECRET):
        errors.append(
            checks.Error(
                "The live webhook secret must differ from the test one (and be set)",
                id="billing.E004",
            )
        )
    if getattr(settings, "STRIPE_FOLLOW_EMULATOR_CLOCK", False):
        from billing.devclock import allowed

        if not allowed():
            errors.append(
                checks.Error(
                    "STRIPE_FOLLOW_EMULATOR_CLOCK is for make run on the offline Stripe only",
                    hint="It needs DEBUG, test mode and STRIPE_API_HOST on loopback.",
                    id="billing.E005",
                )
            )
    return errors


@checks.register(checks.Tags.security, deploy=True)
def stripe_portal_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The customer portal opens with our configuration, and it is still ours (issue 11).

    Stripe's default portal configuration switches plans without invoicing the difference;
    ours (made by ``stripe_sync_catalogue``) invoices upgrades now and schedules downgrades
    for the period end. Someone may have edited it in the dashboard: checked at deploy.
    """
    from billing import gateway
    from billing.catalogue_sync import portal_configuration_find, portal_configuration_problems
    from hrvstr.errors import DomainError

    if not gateway.is_configured():
        return []
    try:
        problems = portal_configuration_problems(portal_configuration_find())
    except gateway.StripeUnavailable:
        # No network here (a build machine): nothing can be judged. The portal itself checks
        # again before it opens (billing.services.portal_configuration_id).
        logger.warning("billing-portal configuration not verified: Stripe unreachable")
        return []
    except DomainError as exc:
        return [
            checks.Warning(
                f"Could not verify the billing-portal configuration: {exc.message}",
                id="billing.W005",
            )
        ]
    return [
        checks.Error(
            f"The billing-portal configuration is not ours: {problem}",
            hint="Run manage.py stripe_sync_catalogue to create or restore it.",
            id="billing.E005",
        )
        for problem in problems
    ]

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.webhook_events import enabled_events


class Command(BaseCommand):
    help = (
        "Print the Stripe event types our webhook endpoint should be subscribed to, "
        "comma-separated (for the dashboard, `stripe listen --events` or the offline Stripe)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(",".join(enabled_events()))

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.catalogue_sync import catalogue_sync, portal_configuration_sync
from hrvstr.errors import DomainError


class Command(BaseCommand):
    help = "Create or find the Stripe products and prices of the catalogue (by lookup key)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            synced = catalogue_sync()
            portal = portal_configuration_sync()
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for price in synced:
            verb = "created" if price.created else "exists "
            self.stdout.write(f"{verb} {price.lookup_key:<22} {price.price_id}")
        self.stdout.write(f"portal {portal.action:<7} {portal.configuration_id}")

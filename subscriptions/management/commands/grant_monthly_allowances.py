from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.services import allowances_grant_due, unlocks_record_expired


class Command(BaseCommand):
    help = (
        "Renew monthly allowances of free and yearly accounts whose period ended, expire open "
        "holds and record expired unlocks. Idempotent: safe to run every minute."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        renewed = allowances_grant_due()
        expired = unlocks_record_expired()
        self.stdout.write(f"accounts brought up to date: {renewed}; unlocks expired: {expired}")

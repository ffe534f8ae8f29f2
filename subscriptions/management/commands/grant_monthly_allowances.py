from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.services import upkeep_run


class Command(BaseCommand):
    help = (
        "Renew monthly allowances of free and yearly accounts whose period ended, expire open "
        "holds, record expired unlocks and e-mail users below their low-credit threshold. "
        "Idempotent: safe to run every minute."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = upkeep_run()
        self.stdout.write(
            f"accounts brought up to date: {done['renewed']}; "
            f"unlocks expired: {done['unlocks_expired']}; "
            f"low-credit e-mails: {done['low_credit_notices']}"
        )

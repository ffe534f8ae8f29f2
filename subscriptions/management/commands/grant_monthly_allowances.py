from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.services import upkeep_run


class Command(BaseCommand):
    help = (
        "Renew monthly allowances of free and yearly accounts whose period ended, expire open "
        "holds, record expired unlocks, e-mail users below their low-credit threshold and run "
        "the steps other apps add (billing: auto top-ups). "
        "Idempotent: safe to run every minute."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = upkeep_run()
        self.stdout.write("; ".join(f"{name.replace('_', ' ')}: {n}" for name, n in done.items()))

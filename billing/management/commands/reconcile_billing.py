from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from billing.sync import account_drift, account_resync
from hrvstr.errors import DomainError
from subscriptions.models import CreditAccount


class Command(BaseCommand):
    help = (
        "Compare every account that has a Stripe customer with Stripe's subscriptions; list "
        "the drift, or repair it with --fix (through the ledger)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fix", action="store_true", help="repair what differs")
        parser.add_argument("--email", help="only this account")

    def handle(self, *args, **options) -> None:
        accounts = CreditAccount.objects.exclude(stripe_customer_id=None).select_related("user")
        if options["email"]:
            accounts = accounts.filter(user__email=options["email"].lower())
        total = accounts.count()
        drifted = fixed = 0
        for index, account in enumerate(accounts.order_by("pk").iterator(), start=1):
            try:
                drift, _ = account_drift(account)
            except DomainError as exc:
                raise CommandError(f"{account.user.email}: {exc.message}") from None
            if drift:
                drifted += 1
                for item in drift:
                    self.stdout.write(
                        f"DRIFT {item.email}: {item.field} "
                        f"ours={item.ours!r} stripe={item.stripe!r}"
                    )
                if options["fix"]:
                    account.refresh_from_db()
                    account_resync(account=account, reason="reconcile")
                    fixed += 1
            if index % 100 == 0 or index == total:
                sys.stderr.write(f"\rchecked {index}/{total}")
        if total:
            sys.stderr.write("\n")
        self.stdout.write(f"accounts checked: {total}; drifted: {drifted}; fixed: {fixed}")

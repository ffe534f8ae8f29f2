from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Exists, OuterRef, Q

from activities.models import LedgerEntry, LedgerKind
from billing.clawbacks import purchase_unpaid_reverse
from billing.reconcile import account_drift, account_repair, bundle_drift
from hrvstr.errors import DomainError
from subscriptions.catalogue import FREE_TIER
from subscriptions.models import CreditAccount


class Command(BaseCommand):
    help = (
        "Compare accounts with Stripe: subscriptions (one live per customer), customers, and "
        "every credit bundle against its Checkout Session and payment. Lists the drift, or "
        "repairs it with --fix (through the ledger) and counts what a second look finds fixed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="repair what differs")
        parser.add_argument("--email", help="only this account")

    def handle(self, *args: Any, **options: Any) -> None:
        purchases = LedgerEntry.objects.filter(
            user_id=OuterRef("user_id"), kind=LedgerKind.PURCHASE
        )
        # Accounts without a Stripe customer are read from our database only: a paid tier or
        # a bundle purchase there is drift (nothing at Stripe paid for it).
        accounts = CreditAccount.objects.filter(
            ~Q(stripe_customer_id=None) | ~Q(tier=FREE_TIER.key) | Exists(purchases)
        ).select_related("user")
        if options["email"]:
            accounts = accounts.filter(user__email=options["email"].lower())
        total = accounts.count()
        drifted = fixed = 0
        for index, account in enumerate(accounts.order_by("pk").iterator(), start=1):
            try:
                drift, _ = account_drift(account)
                bundles = bundle_drift(account)
            except DomainError as exc:
                raise CommandError(f"{account.user.email}: {exc.message}") from None
            if drift or bundles:
                drifted += 1
                for item in drift + bundles:
                    self.stdout.write(
                        f"DRIFT {item.email}: {item.field} "
                        f"ours={item.ours!r} stripe={item.stripe!r}"
                    )
                if options["fix"]:
                    fixed += self._fix(account, bool(drift), bundles)
            if index % 100 == 0 or index == total:
                sys.stderr.write(f"\rchecked {index}/{total}")
        if total:
            sys.stderr.write("\n")
        self.stdout.write(f"accounts checked: {total}; drifted: {drifted}; fixed: {fixed}")

    def _fix(self, account: CreditAccount, subscription_drift: bool, bundles: list) -> int:
        """Repair, then look again: 1 only when nothing differs any more."""
        account.refresh_from_db()
        if subscription_drift:
            result = account_repair(account=account, reason="reconcile")
            for item in result.after:
                self.stdout.write(f"NOT FIXED {item.email}: {item.field}")
        for item in bundles:
            purchase_unpaid_reverse(user_id=account.user_id, source=item.field.split(" ", 1)[1])
        account.refresh_from_db()
        left, _ = account_drift(account)
        return int(not left and not bundle_drift(account))

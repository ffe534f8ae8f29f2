from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hrvstr.auth import normalize_email
from hrvstr.errors import DomainError
from subscriptions.services import account_get, credits_adjust


class Command(BaseCommand):
    help = "Grant (positive) or remove (negative) credits, through the ledger, with a reason."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--amount", required=True, type=int)
        parser.add_argument("--reason", required=True)
        parser.add_argument("--staff", help="e-mail of the staff member doing it (recorded)")
        parser.add_argument(
            "--key", help="idempotency key: running the command again with it changes nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(username=normalize_email(options["email"]))
        except user_model.DoesNotExist:
            raise CommandError(f"No user with e-mail {options['email']}") from None
        staff = None
        if options["staff"]:
            staff = user_model.objects.filter(
                username=normalize_email(options["staff"]), is_staff=True
            ).first()
            if staff is None:
                raise CommandError(f"No staff user with e-mail {options['staff']}")
        elif user.is_staff:
            # Otherwise a staff member with a shell grants themselves credits as "system".
            raise CommandError(
                f"{user.email} is staff: name the other staff member doing this with --staff"
            )
        account_get(user=user)
        try:
            entry = credits_adjust(
                user=user,
                amount=options["amount"],
                reason=options["reason"],
                staff_user=staff,
                idempotency_key=f"adjust:{options['key'] or uuid.uuid4().hex}",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{user.email}: {entry.total_delta:+d} credits (ledger #{entry.pk}); "
            f"now {entry.remaining_after} remaining"
        )

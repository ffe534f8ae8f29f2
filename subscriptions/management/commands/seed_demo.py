from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from subscriptions.services import account_create

DEMO_EMAIL = "demo@hrvstr.local"
STAFF_EMAIL = "admin@hrvstr.local"


class Command(BaseCommand):
    help = "Create (or reset the password of) a demo user and a staff user, and print them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", help="use this password instead of a random one")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(9)
        user_model = get_user_model()
        for email, staff in ((DEMO_EMAIL, False), (STAFF_EMAIL, True)):
            user, _ = user_model.objects.get_or_create(username=email, defaults={"email": email})
            user.is_staff = user.is_superuser = staff
            user.set_password(password)
            user.save()
            account_create(user=user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo user:  {DEMO_EMAIL} / {password}\n"
                f"Staff user: {STAFF_EMAIL} / {password}  ({settings.SITE_URL}/admin/)"
            )
        )

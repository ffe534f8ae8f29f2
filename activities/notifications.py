"""E-mail for what a customer must not miss: receipts, failed payments, plan changes.

Each is sent once per ``key`` (an ``EmailSent`` row, UNIQUE), after the transaction that
decided it commits: a rolled-back webhook sends nothing, and its retry sends once. Templates
are ``activities/email/<kind>_subject.txt`` and ``<kind>.txt``; Django's mail settings choose
the transport (the console under ``make run``, SMTP in production).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from activities.models import EmailSent
from hrvstr.db import insert_unless_present

logger = logging.getLogger(__name__)


def email_once(*, user: User, key: str, kind: str, context: dict[str, Any], to: str = "") -> bool:
    """Send the ``kind`` e-mail to ``user`` (at ``to`` if given, e.g. the billing e-mail an
    invoice carries) unless one was sent for ``key``; whether it was queued now."""
    address = to or user.email
    if not address:
        return False
    context = {"user": user, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"activities/email/{kind}_subject.txt", context).split())
    body = render_to_string(f"activities/email/{kind}.txt", context)
    sent = EmailSent(user=user, key=key[:255], kind=kind, subject=subject[:200])
    if not insert_unless_present(sent):
        return False
    transaction.on_commit(lambda: _deliver(address, subject, body, key))
    return True


def _deliver(address: str, subject: str, body: str, key: str) -> None:
    try:
        send_mail(subject, body, None, [address])
    except Exception:  # the mail server's failure must not fail the webhook that caused it
        logger.exception("e-mail %s to %s not sent", key, address)

from __future__ import annotations

from subscriptions.models import CreditAccount

SUPPORT_GROUP = "support"


class SupportAccount(CreditAccount):
    """No table: a home for the support staff's own permissions (see the data migration that
    creates the "support" group)."""

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [
            ("adjust_credits", "Can grant or remove credits and set custom allowances"),
            ("resync_billing", "Can resync accounts from Stripe and replay failed webhooks"),
        ]

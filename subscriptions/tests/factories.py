from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from subscriptions.services import account_create

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    """``UserFactory.create(...)`` (typed: a ``User``) makes a user with its credit account."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.LazyAttribute(lambda user: user.email)
    # Hashed before the INSERT: ``set_password`` and a second save made Django's
    # ``password_changed`` revoke the tokens of a user who had none, 8 of a new user's 20 queries.
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def credit_account(self: User, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            account_create(user=self)


def allowance_spent(user: User) -> None:
    """Spend this month's allowance (free accounts open with one), so purchases are what is left."""
    from subscriptions.models import CreditAccount
    from subscriptions.services import credits_spend

    left = CreditAccount.objects.get(user=user).monthly_remaining
    if left:
        credits_spend(
            user=user,
            action="ai_ticker_analysis",
            quantity=left,
            idempotency_key=f"allowance-spent:{left}",
        )

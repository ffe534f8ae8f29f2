"""Signing up: a user and their credit account are born together."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from hrvstr.auth import normalize_email
from hrvstr.errors import DomainError
from subscriptions.services import account_create


class RegistrationError(DomainError):
    code = "registration_invalid"
    status = 400
    message = "Could not register"


class EmailTaken(DomainError):
    code = "email_taken"
    status = 409
    message = "An account with this e-mail already exists"


def user_register(*, email: str, password: str, name: str = "") -> User:
    """Create a user (the e-mail is the login) with a free credit account."""
    email = normalize_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise RegistrationError("Enter a valid e-mail address", field="email") from None
    user_model = get_user_model()
    candidate = user_model(username=email, email=email, first_name=name[:150])
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise RegistrationError(" ".join(exc.messages), field="password") from None
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
            account_create(user=candidate)
    except IntegrityError:
        raise EmailTaken() from None
    return candidate

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connections, router
from django.db.models import Field
from django.db.models.query import get_related_populators
from django.dispatch import receiver
from django.http import HttpRequest
from django.test.signals import setting_changed
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

from hrvstr.db import prepared_cursor


def normalize_email(email: str) -> str:
    return email.strip().lower()


class EmailBackend(ModelBackend):
    """Log in with e-mail and password (the username is the normalised e-mail)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        login = email or username
        if not login or password is None:
            return None
        return super().authenticate(request, username=normalize_email(login), password=password)


class AccountJWTAuthentication(JWTAuthentication):
    """Bearer JWT whose user comes with the credit account in the same query.

    Nearly every API call reads the account, so joining it here makes tier-info a one-query
    endpoint (and a 304 no dearer).

    A token's signature and claims are checked once per process (``token_verified``); each
    request still checks its expiry, and ``get_user`` its revocation.
    """

    def get_validated_token(self, raw_token: bytes) -> Token:
        token = token_verified(raw_token)
        try:
            token.check_exp(current_time=aware_utcnow())
        except TokenError:
            # Expired since it was verified: simplejwt's own check gives the usual answer.
            return super().get_validated_token(raw_token)
        return token

    # simplejwt annotates get_user with a TypeVar bound to nothing (AuthUser), which no concrete
    # return type can override; ours returns the project's User.
    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        user = user_with_account(user_id)
        if user is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        # The generation came with the user row: revocation (logout, password change, staff
        # action) costs no query here.
        from subscriptions.tokens import generation_of

        if validated_token.get("gen") != generation_of(user):
            raise AuthenticationFailed("Token revoked; sign in again", code="token_revoked")
        return user


# Tokens a process has verified, most recently used first. An SPA sends the same access token
# on every call for days, and checking its signature and claims again (base64, two JSON
# documents, an HMAC) was 15% of tier-info's CPU in the process (bench/tier_info.py). The key
# is the whole token, so only the exact bytes once verified hit; an invalid token is never
# stored (lru_cache keeps no exceptions). A new signing key means a restart, which empties it;
# a test that changes SIMPLE_JWT (token classes, lifetimes) empties it too.
VERIFIED_TOKENS_PER_PROCESS = 4096


@functools.lru_cache(maxsize=VERIFIED_TOKENS_PER_PROCESS)
def token_verified(raw_token: bytes) -> Token:
    """simplejwt's whole validation of ``raw_token`` (signature, type, claims, expiry)."""
    return JWTAuthentication().get_validated_token(raw_token)


@receiver(setting_changed)
def _forget_verified_tokens(*, setting: str, **kwargs: Any) -> None:
    if setting == "SIMPLE_JWT":
        token_verified.cache_clear()


class AccountJWTScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema that the API takes ``Authorization: Bearer <access JWT>``."""

    target_class = "hrvstr.auth.AccountJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@dataclass(frozen=True)
class _CompiledLookup:
    sql: str
    compiler: Any
    converters: Any
    init_list: list[str]
    user_slice: slice
    populators: list[Any]
    id_field: Field


@functools.cache
def _compiled_lookup(alias: str) -> _CompiledLookup:
    """``User.objects.select_related("credit_account", "token_generation").get(<id>=?)``,
    compiled once.

    Building and compiling that queryset (cloning, lookups, the select list of two models)
    cost more CPU than PostgreSQL's answer to it: about a third of tier-info's time (see
    bench/tier_info.py). The SQL depends only on the models, so it is compiled once per
    process and database alias; rows become models exactly as ``ModelIterable`` makes them
    (same converters, same ``from_db``, same related populators).
    """
    queryset = (
        get_user_model()
        .objects.using(alias)
        .select_related("credit_account", "token_generation")
        .filter(**{api_settings.USER_ID_FIELD: 0})
    )
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    if list(params) != [0]:  # pragma: no cover - a guard for a future Django
        raise RuntimeError(f"unexpected parameters {params!r} in the user lookup")
    id_field = get_user_model()._meta.get_field(api_settings.USER_ID_FIELD)
    if not isinstance(id_field, Field):  # pragma: no cover - a reverse relation is no id
        raise ImproperlyConfigured(f"USER_ID_FIELD {api_settings.USER_ID_FIELD!r} is not a field")
    select, klass_info = compiler.select, compiler.klass_info
    fields = klass_info["select_fields"]
    return _CompiledLookup(
        sql=sql,
        compiler=compiler,
        converters=compiler.get_converters([column for column, _, _ in select]),
        init_list=[column[0].target.attname for column in select[fields[0] : fields[-1] + 1]],
        user_slice=slice(fields[0], fields[-1] + 1),
        # django-stubs 6 describe Django 6.0's signature (a fetch_mode); 5.2 has none.
        populators=get_related_populators(klass_info, select, alias),  # type: ignore[call-arg]
        id_field=id_field,
    )


def user_with_account(user_id: Any) -> User | None:
    """The user with ``credit_account`` already loaded (or known absent), in one query."""
    user_model = get_user_model()
    alias = router.db_for_read(user_model)
    lookup = _compiled_lookup(alias)
    connection = connections[alias]
    field = lookup.id_field
    try:
        value = field.get_db_prep_value(field.to_python(user_id), connection)
    except ValidationError:  # a claim that cannot be an id names no user
        return None
    with prepared_cursor(connection) as cursor:
        cursor.execute(lookup.sql, [value])
        rows = cursor.fetchmany(2)
    if not rows:
        return None
    if lookup.converters:
        rows = list(lookup.compiler.apply_converters(rows, lookup.converters))
    row = rows[0]
    user = user_model.from_db(alias, lookup.init_list, row[lookup.user_slice])
    for populator in lookup.populators:
        populator.populate(row, user)
    return user

"""dj-stripe's owner account, looked up once per webhook delivery instead of once per row.

dj-stripe stamps every row it syncs with the Stripe account that owns it. It finds that account
from the API key, asking the database each time: a savepoint, the APIKey row and its account
for every synced object, and the account's secret key for every ``default_api_key``. A
delivery that stores a subscription with its customer, invoice and card did that 5 to 7 times,
about 14 of its ~60 queries, always with the same answer.

Inside ``owner_account_memo()`` the first answer for a key is kept and reused: around one
delivery's transaction (billing/tasks.py's ``webhook_process``) and one batch of price syncs
(billing/catalogue_sync.py). Outside it, dj-stripe's own code runs unchanged. The memo lives
only as long as the block, so a key added or an account changed is seen by the next delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from djstripe.models import Account

_memo: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("owner_account", default=None)

_account_for_api_key = Account.get_or_retrieve_for_api_key.__func__
_account_secret_key = Account.get_default_api_key


@contextmanager
def owner_account_memo() -> Iterator[None]:
    """Reuse the owner account found for an API key (and an account's secret key) until the
    block ends: one delivery, or one batch of syncs."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _remembered(key: tuple[Any, ...], find: Callable[[], Any]) -> Any:
    memo = _memo.get()
    if memo is None:
        return find()
    if key not in memo:
        memo[key] = find()
    return memo[key]


def _get_or_retrieve_for_api_key(cls: type[Account], api_key: str) -> Any:
    return _remembered(("for_key", api_key), lambda: _account_for_api_key(cls, api_key))


def _get_default_api_key(self: Account, livemode: bool | None = None) -> str:
    return _remembered(("secret", self.pk, livemode), lambda: _account_secret_key(self, livemode))


def install() -> None:
    """Route dj-stripe's two lookups through the memo (billing.apps at start-up)."""
    Account.get_or_retrieve_for_api_key = classmethod(_get_or_retrieve_for_api_key)
    Account.get_default_api_key = _get_default_api_key

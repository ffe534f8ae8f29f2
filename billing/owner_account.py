"""dj-stripe's owner account, looked up once per worker process and minute, not once per row.

dj-stripe stamps every row it syncs with the Stripe account that owns it. It finds that account
from the API key, asking the database each time: a savepoint, the APIKey row and its account
for every synced object, and the account's secret key for every ``default_api_key``. A
delivery that stores a subscription with its customer, invoice and card did that 5 to 7 times,
about 14 of its ~60 queries, always with the same answer; with the answer kept for the
delivery, each delivery still asked once: 5 of its ~41 statements (bench/task_queue.py).

Inside ``owner_account_memo()`` (around one delivery's transaction, billing/tasks.py's
``webhook_process``, and one batch of price syncs, billing/catalogue_sync.py) an answer is
taken from, in order:

- the block's own memo: what this delivery found, committed or not;
- the process's memo: answers whose transaction committed, for ``SHARED_FOR`` seconds. Only
  committed answers go there: an account that dj-stripe created inside a delivery that then
  rolled back does not exist, and must not be named by the next one. A change to an account
  or an API key saved in this process (the admin) empties it at once, and so does a block
  that fails; another process sees the change within ``SHARED_FOR`` seconds or at its next
  failed delivery (a row named by a deleted account fails it, and the queue retries it).

Outside the block, dj-stripe's own code runs unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from djstripe.models import Account, APIKey

SHARED_FOR = 60.0  # seconds a committed answer serves other deliveries of this process

_memo: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("owner_account", default=None)
# key -> (monotonic expiry, answer); plain dict operations, atomic under the GIL: two threads
# that miss at once both ask the database, and either answer is right.
_shared: dict[tuple[Any, ...], tuple[float, Any]] = {}

_account_for_api_key = Account.get_or_retrieve_for_api_key.__func__
_account_secret_key = Account.get_default_api_key


@contextmanager
def owner_account_memo() -> Iterator[None]:
    """Reuse the owner account found for an API key (and an account's secret key) until the
    block ends, and committed answers for ``SHARED_FOR`` seconds: one delivery, or one batch
    of syncs."""
    token = _memo.set({})
    try:
        yield
    except BaseException:
        # An answer kept for the process may be why the block failed (an account deleted
        # behind the ORM's back, so no signal said so): the retry asks the database again.
        shared_forget()
        raise
    finally:
        _memo.reset(token)


def shared_forget(**_: Any) -> None:
    """Forget every answer kept for the process (an account or API key changed here)."""
    _shared.clear()


def _share(key: tuple[Any, ...], answer: Any) -> None:
    _shared[key] = (time.monotonic() + SHARED_FOR, answer)


def _remembered(key: tuple[Any, ...], find: Callable[[], Any]) -> Any:
    memo = _memo.get()
    if memo is None:
        return find()
    if key in memo:
        return memo[key]
    kept = _shared.get(key)
    if kept is not None and kept[0] > time.monotonic():
        memo[key] = kept[1]
        return kept[1]
    answer = memo[key] = find()
    transaction.on_commit(lambda: _share(key, answer))
    return answer


def _get_or_retrieve_for_api_key(cls: type[Account], api_key: str) -> Any:
    return _remembered(("for_key", api_key), lambda: _account_for_api_key(cls, api_key))


def _get_default_api_key(self: Account, livemode: bool | None = None) -> str:
    return _remembered(("secret", self.pk, livemode), lambda: _account_secret_key(self, livemode))


def install() -> None:
    """Route dj-stripe's two lookups through the memos (billing.apps at start-up)."""
    Account.get_or_retrieve_for_api_key = classmethod(_get_or_retrieve_for_api_key)
    Account.get_default_api_key = _get_default_api_key
    for model in (Account, APIKey):
        for signal in (post_save, post_delete):
            signal.connect(shared_forget, sender=model, dispatch_uid=f"owner-{model.__name__}")

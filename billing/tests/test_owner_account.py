"""dj-stripe's owner-account lookups (billing/owner_account.py): kept for a delivery, and once
committed, for the process's next deliveries for a minute; never an answer that rolled back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from djstripe.models import Account, APIKey

from billing import owner_account
from billing.owner_account import owner_account_memo
from billing.tests.harness import SECRET_KEY


def api_key_reads(run: Callable[[], Any]) -> tuple[Any, int]:
    """``run()``'s answer and how many statements read dj-stripe's API-key table."""
    with CaptureQueriesContext(connection) as queries:
        answer = run()
    return answer, sum('"djstripe_apikey"' in q["sql"] for q in queries.captured_queries)


def delivery(run: Callable[[], Any], capture: Any) -> tuple[Any, int]:
    """``run()`` inside one delivery's memo and transaction, committed."""
    with capture(execute=True), transaction.atomic(), owner_account_memo():
        return api_key_reads(run)


def owner() -> Account:
    return Account.get_or_retrieve_for_api_key(SECRET_KEY)


def test_a_committed_answer_serves_the_next_deliveries(
    stripe_harness, django_capture_on_commit_callbacks
):
    first, reads = delivery(owner, django_capture_on_commit_callbacks)
    assert reads >= 1
    second, reads = delivery(owner, django_capture_on_commit_callbacks)
    assert (second.pk, reads) == (first.pk, 0)
    key, reads = delivery(lambda: first.get_default_api_key(), django_capture_on_commit_callbacks)
    assert key == SECRET_KEY and reads == 1
    key, reads = delivery(lambda: first.get_default_api_key(), django_capture_on_commit_callbacks)
    assert (key, reads) == (SECRET_KEY, 0)


def test_an_answer_whose_delivery_rolled_back_is_not_kept(
    stripe_harness, django_capture_on_commit_callbacks
):
    """An account dj-stripe created inside a failed delivery would be gone with it: the next
    delivery asks the database again."""
    with (
        pytest.raises(RuntimeError),
        django_capture_on_commit_callbacks(execute=True),
        transaction.atomic(),
        owner_account_memo(),
    ):
        owner()
        raise RuntimeError("the delivery failed")
    account, reads = delivery(owner, django_capture_on_commit_callbacks)
    assert reads >= 1 and Account.objects.filter(pk=account.pk).exists()
    assert delivery(owner, django_capture_on_commit_callbacks)[1] == 0


def test_answers_expire_and_a_key_saved_here_is_seen_at_once(
    stripe_harness, django_capture_on_commit_callbacks, monkeypatch
):
    delivery(owner, django_capture_on_commit_callbacks)
    assert delivery(owner, django_capture_on_commit_callbacks)[1] == 0
    APIKey.objects.get(secret=SECRET_KEY).save()  # e.g. the admin, in this process
    assert delivery(owner, django_capture_on_commit_callbacks)[1] >= 1
    assert delivery(owner, django_capture_on_commit_callbacks)[1] == 0
    now = owner_account.time.monotonic()
    monkeypatch.setattr(owner_account.time, "monotonic", lambda: now + owner_account.SHARED_FOR + 1)
    assert delivery(owner, django_capture_on_commit_callbacks)[1] >= 1


def test_a_failed_delivery_forgets_what_the_process_kept(
    stripe_harness, django_capture_on_commit_callbacks
):
    """An account deleted without the ORM's signals (raw SQL, a restored database) is named
    by kept answers until a delivery fails on it; its retry asks the database again."""
    delivery(owner, django_capture_on_commit_callbacks)
    assert delivery(owner, django_capture_on_commit_callbacks)[1] == 0
    with pytest.raises(RuntimeError), owner_account_memo():
        raise RuntimeError("a foreign key to a deleted account")
    assert delivery(owner, django_capture_on_commit_callbacks)[1] >= 1


def test_outside_a_delivery_dj_stripe_asks_every_time(
    stripe_harness, django_capture_on_commit_callbacks
):
    delivery(owner, django_capture_on_commit_callbacks)
    assert api_key_reads(owner)[1] >= 1
    assert api_key_reads(owner)[1] >= 1

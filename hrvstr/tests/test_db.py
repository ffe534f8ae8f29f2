"""``insert_unless_present``: one statement that inserts a "once" row or changes nothing."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from activities.models import EmailSent
from hrvstr.db import insert_unless_present

pytestmark = pytest.mark.django_db


def test_the_first_row_is_inserted_and_a_second_with_its_key_changes_nothing(owner):
    first = EmailSent(user=owner, key="receipt:in_1", kind="receipt", subject="First")
    assert insert_unless_present(first) is True
    stored = EmailSent.objects.get(pk=first.pk)
    assert (stored.subject, stored.user_id) == ("First", owner.pk)
    assert stored.sent_at is not None  # auto_now_add, as save() would set it
    assert not first._state.adding

    second = EmailSent(user=owner, key="receipt:in_1", kind="receipt", subject="Second")
    assert insert_unless_present(second) is False
    assert second.pk is None
    assert list(EmailSent.objects.values_list("subject", flat=True)) == ["First"]


def test_it_is_one_statement_whether_or_not_the_row_exists(owner):
    for expected in (True, False):
        with CaptureQueriesContext(connection) as queries:
            inserted = insert_unless_present(
                EmailSent(user=owner, key="k", kind="receipt", subject="s")
            )
        assert inserted is expected
        assert len(queries.captured_queries) == 1, queries.captured_queries


def test_only_a_unique_clash_is_ignored_other_constraints_still_fail(owner):
    missing_kind = EmailSent(user=owner, key="k2", kind="receipt", subject="s")
    missing_kind.kind = None  # type: ignore[assignment]  # NOT NULL
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_unless_present(missing_kind)
    assert not EmailSent.objects.exists()

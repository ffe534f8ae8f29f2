from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from activities.models import Activity
from subscriptions.models import CreditAccount
from subscriptions.services import credits_adjust, credits_spend

pytestmark = pytest.mark.django_db


def fund(user, amount=100):
    credits_adjust(
        user=user,
        amount=amount,
        reason="test credit",
        staff_user=None,
        idempotency_key=f"f{user.pk}",
    )


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get("/activity/")["Location"] == "/login/?next=/activity/"


def test_the_feed_lists_what_happened_newest_first(owner, owner_client):
    fund(owner)
    credits_spend(user=owner, action="finviz_sentiment", quantity=2, idempotency_key="s1")
    html = owner_client.get("/activity/").content.decode()
    assert "Activity feed" in html
    newest = Activity.objects.filter(user=owner).first()
    assert newest is not None and newest.title in html


def test_the_ledger_shows_every_change_with_its_balance(owner, owner_client):
    fund(owner)
    credits_spend(user=owner, action="finviz_sentiment", quantity=2, idempotency_key="s1")
    html = owner_client.get("/activity/?show=ledger").content.decode()
    assert "Credit ledger" in html
    assert ">-6</td>" in html and ">+100</td>" in html
    assert ">144</td>" in html  # the free allowance (50) paid the 6, then the 100 bought


def test_it_filters_by_type(owner, owner_client):
    fund(owner)
    credits_spend(user=owner, action="finviz_sentiment", quantity=1, idempotency_key="s1")
    html = owner_client.get("/activity/?show=ledger&type=spend").content.decode()
    assert ">-3</td>" in html and ">+100</td>" not in html
    assert '<option value="spend" selected>' in html
    # An unknown type is ignored rather than an error.
    assert owner_client.get("/activity/?show=ledger&type=bogus").status_code == 200


def test_it_paginates(owner, owner_client):
    fund(owner, 1000)
    for index in range(30):
        credits_spend(
            user=owner, action="ai_ticker_analysis", quantity=1, idempotency_key=f"s{index}"
        )
    first = owner_client.get("/activity/?show=ledger").content.decode()
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = owner_client.get("/activity/?show=ledger&page=2").content.decode()
    assert "Page 2 of 2" in second
    assert owner_client.get("/activity/?show=ledger&page=99").status_code == 200


def test_the_chart_draws_credits_used_per_day_for_30_days(owner, owner_client):
    fund(owner, 1000)
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=3), tick=False):
        credits_spend(user=owner, action="reddit_sentiment", quantity=4, idempotency_key="old")
    with time_machine.travel(now - timedelta(days=40), tick=False):
        credits_spend(user=owner, action="reddit_sentiment", quantity=1, idempotency_key="too-old")
    credits_spend(user=owner, action="finviz_sentiment", quantity=1, idempotency_key="today")
    html = owner_client.get("/activity/").content.decode()
    assert '<svg viewBox="0 0 600 160" role="img"' in html
    assert html.count('class="bar"') == 2  # the 40-day-old spend is not drawn
    assert "Credits used per day, last 30 days: 23 total, peak 20" in html


def test_members_see_only_their_own_activity(owner, other_user, other_client):
    fund(owner)
    html = other_client.get("/activity/?show=ledger").content.decode()
    assert ">+100</td>" not in html  # the owner's purchase; the other user sees only their own
    assert ">+50</td>" in html
    assert CreditAccount.objects.get(user=owner).purchased_balance == 100


def test_staff_see_their_own_activity(staff_client):
    assert staff_client.get("/activity/").status_code == 200

"""``make screenshots``: the pages and the admin dashboard as PNGs, desktop and phone widths.

    python -m devtools.screenshots [--out screenshots]

Starts the app on a throw-away SQLite database with the offline Stripe beside it (both in
this process, on loopback ports), fills it with demo data through the same services and
Stripe flows the app uses, then has Debian's headless Chromium save each page at 1280 and
390 pixels wide. Nothing in var/ or the developer's database is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import User
    from django.core.servers.basehttp import ThreadedWSGIServer

    from stripe_emulator import Emulator

BASE_DIR = Path(__file__).resolve().parent.parent
KEY = "sk_test_screenshotsEmulatorKey0000000000"
WEBHOOK_SECRET = "whsec_screenshots_offline"
PASSWORD = "screenshots-demo-pass"
WIDTHS = {"desktop": 1280, "phone": 390}
USER_PAGES = {
    "pricing": "/pricing/",
    "billing": "/billing/",
    "activity": "/activity/",
    "activity-ledger": "/activity/?show=ledger",
    "checkout-success": "/billing/success/?session_id=cs_demo",
    # The demo user is on Pro monthly: Stripe's preview of an upgrade (due today, next invoice).
    "change-plan-preview": "/billing/change-plan/?tier=elite&interval=month",
    # A "#heading" path saves only the section under that heading: here the invoice list with
    # the credit bundle's receipt (number, lines, PDF link) above the plan's invoice.
    "billing-receipt": "/billing/#invoices-title",
}
# Customers in the states a billing page must explain: a failed renewal (the banner on every
# page, no plan changes offered) and a plan that ended (why, the credits, the way back).
PAST_DUE_PAGES = {"past-due-billing": "/billing/", "past-due-pricing": "/pricing/"}
CHURNED_PAGES = {"churned-billing": "/billing/"}
STAFF_PAGES = {
    "admin-index": "/admin/",
    "admin-dashboard": "/admin/dashboard/",
    "admin-users": "/admin/auth/user/",
    "admin-ledger": "/admin/activities/ledgerentry/",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _serve(port: int) -> ThreadedWSGIServer:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler, allow_reuse_address=True)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _past_due(emulator: Emulator, user: User) -> None:
    """A renewal that really failed at Stripe, with its open invoice (the banner's "Pay now"):
    the customer lives on a Stripe test clock of their own, moved past the renewal, so no
    other demo customer's dates move."""
    import stripe

    from billing.dunning import dunning_for
    from subscriptions.models import CreditAccount
    from subscriptions.services import customer_link

    clock = stripe.test_helpers.TestClock.create(frozen_time=emulator.now(), api_key=KEY)
    customer = stripe.Customer.create(
        email=user.email,
        test_clock=clock.id,
        metadata={"hrvstr_user_id": str(user.pk)},
        api_key=KEY,
    )
    customer_link(user_id=user.pk, customer_id=customer.id)
    _pay(emulator, user, tier="pro", interval="month", card="4000000000000341")
    stripe.test_helpers.TestClock.advance(
        clock.id, frozen_time=clock.frozen_time + 31 * 86_400 + 3_600, api_key=KEY
    )
    _wait(
        lambda: getattr(dunning_for(CreditAccount.objects.get(user=user)), "pay_url", ""),
        what="the failed renewal and its open invoice",
    )
    emulator.flush(10)


def _pay(emulator: Emulator, user: User, card: str = "4242424242424242", **choice: Any) -> None:
    """Checkout as a customer would; returns once the webhook has changed the account."""
    from billing.services import checkout_session_create
    from subscriptions.models import CreditAccount

    def state() -> tuple[str, int]:
        account = CreditAccount.objects.get(user=user)
        return account.tier, account.purchased_balance

    before = state()
    # A fresh user: one from earlier carries the credit account it was loaded with.
    user = type(user).objects.get(pk=user.pk)
    start = checkout_session_create(user=user, **choice)
    emulator.complete_checkout(start.session_id, card=card)
    # A plan changes the tier, a bundle the purchased credits: wait for that, not any write.
    index = 1 if "bundle" in choice else 0
    _wait(lambda: state()[index] != before[index], what=f"the webhook for {choice}")
    emulator.flush(10)


def demo_data(emulator: Emulator) -> None:
    import time_machine
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from billing.customer_details import billing_details_update
    from billing.services import subscription_cancel
    from subscriptions.services import (
        allowance_override_set,
        component_unlock,
        credits_adjust,
        credits_spend,
    )
    from subscriptions.users import user_register

    now = timezone.now()
    # The demo user's last month, told through the services at the times it happened.
    with time_machine.travel(now - timedelta(days=29, hours=3), tick=False):
        demo = user_register(email="demo@hrvstr.local", password=PASSWORD, name="Dana Demo")
        credits_adjust(
            user=demo,
            amount=300,
            reason="Beta tester thank-you",
            staff_user=None,
            idempotency_key="demo-beta-credits",
        )
    usage = [
        (27, "ai_ticker_analysis", 12),
        (24, "yahoo_sentiment", 6),
        (21, "finviz_sentiment", 4),
    ]
    usage += [
        (18, "ai_ticker_analysis", 20),
        (15, "reddit_sentiment", 3),
        (12, "finviz_sentiment", 7),
    ]
    usage += [(9, "ai_ticker_analysis", 9), (6, "yahoo_sentiment", 11), (3, "reddit_sentiment", 5)]
    usage += [(2, "ai_ticker_analysis", 14), (1, "finviz_sentiment", 2)]
    for days_ago, action, quantity in usage:
        with time_machine.travel(now - timedelta(days=days_ago, hours=5), tick=False):
            credits_spend(
                user=demo, action=action, quantity=quantity, idempotency_key=f"demo-{days_ago}"
            )
    _pay(emulator, demo, tier="pro", interval="month")
    _pay(emulator, demo, bundle="credits_250")
    demo = get_user_model().objects.get(pk=demo.pk)
    billing_details_update(
        user=demo, email="accounts@demo.example", tax_id_type="eu_vat", tax_id_value="DE123456789"
    )
    credits_spend(user=demo, action="yahoo_sentiment", quantity=30, idempotency_key="demo-today")
    component_unlock(user=demo, component="reddit")
    component_unlock(user=demo, component="chart")

    # Other customers, so the dashboard has something to count.
    for index in range(5):
        user_register(email=f"free{index}@example.com", password=PASSWORD)
    elite = user_register(email="elite@example.com", password=PASSWORD, name="Eli Elite")
    _pay(emulator, elite, tier="elite", interval="year")
    fund = user_register(email="fund@example.com", password=PASSWORD, name="Acme Fund")
    _pay(emulator, fund, tier="institutional", interval="month")
    fund = get_user_model().objects.get(pk=fund.pk)
    allowance_override_set(
        user=fund,
        allowance=12_000,
        reason="Contract #1042",
        staff_user=None,
        idempotency_key="demo-fund-allowance",
    )
    late = user_register(email="late@example.com", password=PASSWORD, name="Lee Late")
    _past_due(emulator, late)
    gone = user_register(email="gone@example.com", password=PASSWORD, name="Gale Gone")
    _pay(emulator, gone, tier="pro", interval="month")
    _pay(emulator, gone, bundle="credits_250")
    gone = get_user_model().objects.get(pk=gone.pk)
    subscription_cancel(user=gone, immediate=True)
    emulator.flush(10)
    get_user_model().objects.create_superuser(
        username="admin@hrvstr.local", email="admin@hrvstr.local", password=PASSWORD
    )


def capture(base_url: str, out: Path, widths: dict[str, int] = WIDTHS) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from devtools.browser import launch

    saved: list[Path] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        for label, width in widths.items():
            for login_url, email, pages in (
                ("/login/", "demo@hrvstr.local", USER_PAGES),
                ("/login/", "late@example.com", PAST_DUE_PAGES),
                ("/login/", "gone@example.com", CHURNED_PAGES),
                ("/admin/login/", "admin@hrvstr.local", STAFF_PAGES),
            ):
                context = browser.new_context(
                    viewport={"width": width, "height": 900}, device_scale_factor=1
                )
                page = context.new_page()
                page.goto(base_url + login_url)
                page.fill("input[name=username]", email)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit], input[type=submit]")
                page.wait_for_load_state()
                for name, path in pages.items():
                    page.goto(base_url + path)
                    target = out / f"{name}-{label}.png"
                    _, _, heading = path.partition("#")
                    if heading:
                        page.locator(f"section:has(#{heading})").screenshot(path=str(target))
                    else:
                        page.screenshot(path=str(target), full_page=True)
                    saved.append(target)
                context.close()
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BASE_DIR / "screenshots"))
    parser.add_argument(
        "--width", choices=sorted(WIDTHS), action="append", help="only these widths (repeatable)"
    )
    args = parser.parse_args(argv)
    widths = {label: WIDTHS[label] for label in args.width} if args.width else WIDTHS
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from devtools.browser import chromium_available

    if not chromium_available():
        print("screenshots need /usr/bin/chromium (apt-get install chromium) and playwright")
        return 1

    from stripe_emulator import Emulator

    workdir = Path(tempfile.mkdtemp(prefix="hrvstr-screenshots-"))
    port = _free_port()
    emulator = Emulator(delivery="background", retry_delays=(0.2, 0.5, 1.0), account_name="HRVSTR")
    stripe_server = emulator.serve("127.0.0.1", 0)
    emulator.add_webhook_endpoint(f"http://127.0.0.1:{port}/api/billing/webhook", WEBHOOK_SECRET)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="hrvstr.settings",
        DEBUG="true",
        HRVSTR_VAR_DIR=str(workdir),
        DATABASE_URL=f"sqlite:///{workdir / 'screenshots.sqlite3'}",
        SITE_URL=f"http://127.0.0.1:{port}",
        STRIPE_LIVE_MODE="false",
        STRIPE_TEST_SECRET_KEY=KEY,
        STRIPE_TEST_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_HOST=stripe_server.url,
        RATELIMIT_ENABLE="false",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    server = _serve(port)
    try:
        from billing.catalogue_sync import catalogue_sync

        catalogue_sync()
        # Deliver the catalogue's events now: demo_data travels in time, and a delivery
        # signed in the past would be refused as a replay.
        emulator.flush(10)
        demo_data(emulator)
        # Playwright's sync API keeps an event loop on this thread, which Django's
        # async-safety check mistakes for async code; the ORM runs in the server's threads.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        for path in capture(f"http://127.0.0.1:{port}", out, widths):
            print(path.relative_to(BASE_DIR) if path.is_relative_to(BASE_DIR) else path)
    finally:
        server.shutdown()
        emulator.flush(5)
        stripe_server.shutdown()
        emulator.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BASE_DIR))
    sys.exit(main())

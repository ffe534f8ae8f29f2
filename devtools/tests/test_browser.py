"""Real-browser journeys: Debian's Chromium through Playwright, against the live server and
the offline Stripe served over HTTP (its hosted Checkout page takes the test card).

Skipped when /usr/bin/chromium (or the playwright package) is missing; .ci/run installs both.
"""

from __future__ import annotations

import os
import re

import pytest

from devtools.browser import chromium_available, launch
from hrvstr.testing import full_size_only

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),  # one Chromium per run, not one per xdist worker
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium and playwright"),
]
TIMEOUT_MS = 20_000
# Under `make test` one journey walks the pages: sign up, pay for pro on the offline Stripe's
# page, buy credits (the money path, in half the time of the whole customer life); the
# journeys marked full_size_only() run in CI and make test-full.


@pytest.fixture(autouse=True)
def _fresh_content_types():
    """A transactional test flushes the tables, content types included, and may not recreate
    them with the same ids; the process-wide ContentType cache then points the admin's log
    rows at a row that is gone (a foreign-key error seen once on PostgreSQL in CI)."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = launch(playwright)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def watch_csp(page) -> list[str]:
    """Chromium's reports of anything the Content-Security-Policy blocked on this page."""
    violations: list[str] = []

    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    violations = watch_csp(page)
    yield page
    context.close()
    # Every journey runs under the site's Content-Security-Policy: nothing may be blocked.
    assert violations == []


@pytest.fixture
def stripe_server(live_server, settings):
    import stripe

    from billing.catalogue_sync import catalogue_sync, portal_configuration_sync
    from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, endpoint_subscribe
    from stripe_emulator import Emulator

    emulator = Emulator(delivery="background", retry_delays=(0.2, 0.5, 1.0))
    server = emulator.serve("127.0.0.1", 0)
    endpoint_subscribe(emulator, f"{live_server.url}/api/billing/webhook")
    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_HOST = server.url
    settings.SITE_URL = live_server.url
    previous_base = stripe.api_base
    catalogue_sync()
    portal_configuration_sync()
    try:
        yield emulator
    finally:
        emulator.flush(10)
        server.shutdown()
        emulator.close()
        stripe.api_base = previous_base


def sign_up(page, base_url, email="browser@example.com"):
    page.goto(f"{base_url}/signup/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("a long passphrase")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base_url}/pricing/")


def spend_as_the_spa(page, base_url, email, quantity):
    """Spend credits through the API with a token, as the SPA does (no page spends)."""
    signed_in = page.request.post(
        f"{base_url}/api/auth/token", data={"email": email, "password": "a long passphrase"}
    )
    spent = page.request.post(
        f"{base_url}/api/credits/spend",
        headers={"Authorization": f"Bearer {signed_in.json()['access']}"},
        data={"action": "ai_ticker_analysis", "quantity": quantity},
    )
    assert spent.ok, spent.text()


def pay_on_stripe(page, card="4242 4242 4242 4242"):
    page.locator("#card").fill(card)
    page.get_by_role("button", name=re.compile("Subscribe|Pay")).click()


def test_sign_up_choose_pro_pay_on_stripe_and_see_pro_then_buy_credits(
    page, live_server, stripe_server
):
    from playwright.sync_api import expect

    sign_up(page, live_server.url)
    expect(page.locator("#plan-free")).to_be_visible()
    expect(page.locator(".plan.current")).to_contain_text("Free")

    page.get_by_role("button", name="Choose Pro monthly").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    page.wait_for_url(re.compile(r"/billing/success/\?session_id=cs_"))
    # The page waits for the webhook and then updates itself without a reload.
    expect(page.locator("#activation")).to_contain_text(
        "You are on Pro with 500 credits left.", timeout=TIMEOUT_MS
    )

    page.get_by_role("link", name="Go to billing").click()
    expect(page.get_by_role("heading", name="Pro plan")).to_be_visible()
    expect(page.locator(".big-number")).to_contain_text("500 left")

    page.get_by_role("button", name="Buy 250 credits for $10").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    expect(page.locator("#activation")).to_contain_text(
        "You are on Pro with 750 credits left.", timeout=TIMEOUT_MS
    )
    page.goto(f"{live_server.url}/billing/")
    expect(page.locator(".big-number")).to_contain_text("750 left")
    expect(page.get_by_text("+ 250 purchased")).to_be_visible()


@full_size_only()
def test_a_cancelled_checkout_changes_nothing(page, live_server, stripe_server):
    from playwright.sync_api import expect

    sign_up(page, live_server.url, email="undecided@example.com")
    page.get_by_role("button", name="Choose Elite monthly").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    page.goto(f"{live_server.url}/billing/cancel/")
    expect(page.get_by_role("heading", name="Checkout cancelled")).to_be_visible()
    page.goto(f"{live_server.url}/billing/")
    expect(page.get_by_role("heading", name="Free plan")).to_be_visible()


@full_size_only()
def test_support_grants_credits_with_a_reason(page, live_server):
    from playwright.sync_api import expect

    from activities.models import LedgerEntry
    from subscriptions.models import CreditAccount
    from subscriptions.tests.factories import PASSWORD, UserFactory

    UserFactory.create(email="customer@example.com")
    UserFactory.create(email="support@example.com", is_staff=True, is_superuser=True)

    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("support@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{live_server.url}/admin/auth/user/?q=customer@")
    page.get_by_role("link", name="customer@example.com").click()
    page.get_by_role("link", name="Grant or remove credits").click()
    page.get_by_label("Amount").fill("120")
    page.get_by_role("button", name="Grant or remove credits").click()
    # The browser's own required-field check stops a missing reason before the server does.
    expect(page.get_by_label("Reason")).to_be_focused()
    page.get_by_label("Reason").fill("Refund for the outage on 3 Nov")
    page.get_by_role("button", name="Grant or remove credits").click()
    # 50 free credits a month plus the 120 granted.
    expect(page.locator(".messagelist")).to_contain_text("+120 credits, 170 left")

    account = CreditAccount.objects.get(user__email="customer@example.com")
    assert account.purchased_balance == 120
    entry = LedgerEntry.objects.get(user__email="customer@example.com", kind="adjustment")
    assert entry.reason == "Refund for the outage on 3 Nov"
    assert entry.actor_user is not None and entry.actor_user.email == "support@example.com"


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => {
    if (el.tagName === 'BUTTON') return !el.textContent.trim() && !el.getAttribute('aria-label');
    const byFor = el.id && document.querySelector(`label[for="${el.id}"]`);
    return !(byFor || el.closest('label') || el.getAttribute('aria-label'));
  })
  .map(el => el.outerHTML.slice(0, 120))"""


@full_size_only()
@pytest.mark.parametrize("width", [1280, 390])
def test_pages_have_labelled_controls_and_fit_a_phone(browser, live_server, width):
    from conftest import logged_in
    from subscriptions.models import CreditAccount
    from subscriptions.services import credits_adjust, credits_spend
    from subscriptions.tests.factories import UserFactory

    user = UserFactory.create(email="looks@example.com")
    CreditAccount.objects.filter(user=user).update(
        tier="pro",
        monthly_allowance=500,
        subscription_status="active",
        stripe_subscription_id="sub_x",
    )
    credits_adjust(user=user, amount=40, reason="welcome", staff_user=None, idempotency_key="w")
    credits_spend(user=user, action="finviz_sentiment", quantity=2, idempotency_key="s")
    session_cookie = logged_in(user).cookies["sessionid"].value

    context = browser.new_context(viewport={"width": width, "height": 800})
    context.add_cookies([{"name": "sessionid", "value": session_cookie, "url": live_server.url}])
    page = context.new_page()
    violations = watch_csp(page)
    try:
        for path in ["/pricing/", "/billing/", "/activity/", "/activity/?show=ledger"]:
            page.goto(live_server.url + path)
            assert page.evaluate(UNLABELLED_CONTROLS) == [], path
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{path} is {overflow}px wide at {width}px"
            # The first Tab lands on the skip link, which leads to the content.
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        context.clear_cookies()
        for path in ["/signup/", "/login/", "/password-reset/"]:
            page.goto(live_server.url + path)
            assert page.evaluate(UNLABELLED_CONTROLS) == [], path
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    finally:
        context.close()
    assert violations == []


@full_size_only()
def test_no_page_breaks_under_the_content_security_policy(page, live_server):
    """Every kind of page we serve, the admin and the API docs included, in Chromium: the
    policy is there, the page works, and Chromium reports nothing blocked (the fixture)."""
    from playwright.sync_api import expect

    from activities.models import LedgerEntry
    from subscriptions.services import credits_adjust
    from subscriptions.tests.factories import PASSWORD, UserFactory

    customer = UserFactory.create(email="csp-customer@example.com")
    UserFactory.create(email="csp-staff@example.com", is_staff=True, is_superuser=True)
    credits_adjust(user=customer, amount=5, reason="w", staff_user=None, idempotency_key="c")
    base = live_server.url

    response = page.goto(f"{base}/pricing/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for path in ["/signup/", "/login/", "/password-reset/", "/no-such-page/"]:
        page.goto(base + path)
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("HRVSTR Billing API")

    page.goto(f"{base}/login/")
    page.get_by_label("E-mail").fill("csp-customer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    for path in ["/billing/", "/activity/", "/billing/success/?session_id=cs_none"]:
        page.goto(base + path)
    # The success page's script (a static file now) runs: it polls tier-info.
    with page.expect_response(lambda r: "/api/subscription/tier-info" in r.url):
        page.goto(f"{base}/billing/success/?session_id=cs_none")
    page.get_by_role("button", name="Log out").click()

    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username").fill("csp-staff@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Billing dashboard")).to_be_visible()
    for path in [
        "/admin/dashboard/",
        "/admin/auth/user/",
        f"/admin/auth/user/{customer.pk}/change/",
        f"/admin/auth/user/{customer.pk}/support/adjust_credits/",
        "/admin/activities/ledgerentry/",
        f"/admin/activities/ledgerentry/{LedgerEntry.objects.filter(user=customer).latest('pk').pk}/change/",
        "/admin/djstripe/webhookeventtrigger/",
        "/admin/auth/user/add/",
    ]:
        page.goto(base + path)
        assert page.locator("#content").count() == 1, path


@full_size_only()
def test_an_upgrade_shows_its_price_first_and_cancel_and_resume_show_at_once(
    page, live_server, stripe_server
):
    """Issue 16: the confirmation shows Stripe's preview, and each page after a change shows
    what Stripe answered (no reload, no waiting for the webhook)."""
    from playwright.sync_api import expect

    from hrvstr.formatting import cents
    from subscriptions.models import CreditAccount

    sign_up(page, live_server.url, email="changer@example.com")
    page.get_by_role("button", name="Choose Pro monthly").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    expect(page.locator("#activation")).to_contain_text("You are on Pro", timeout=TIMEOUT_MS)
    page.goto(f"{live_server.url}/billing/")
    expect(page.get_by_test_id("next-payment")).to_have_text("$19")

    page.get_by_role("button", name="Upgrade to Elite").click()
    expect(page.get_by_role("heading", name="Switch to Elite monthly?")).to_be_visible()
    due_today = page.get_by_test_id("due-today")
    expect(due_today).to_have_text(re.compile(r"^\$(29\.\d\d|30)$"))
    expect(page.get_by_test_id("next-invoice")).to_contain_text("$49 on")
    charged = due_today.inner_text()
    page.get_by_role("button", name="Switch to Elite").click()
    page.wait_for_url(f"{live_server.url}/billing/")
    expect(page.locator(".message")).to_contain_text("You are now on Elite.")
    expect(page.get_by_role("heading", name="Elite plan")).to_be_visible()
    account = CreditAccount.objects.get(user__email="changer@example.com")
    assert account.tier == "elite"
    # What Stripe charged is what the preview said.
    from billing import gateway

    update = [
        invoice
        for invoice in gateway.invoices_for_subscription(account.stripe_subscription_id)
        if invoice.billing_reason == "subscription_update"
    ]
    assert [cents(i.amount_paid) for i in update] == [charged]

    page.locator("#cancel summary").click()
    page.get_by_role("button", name="Cancel at period end").click()
    expect(page.locator(".status.notice")).to_contain_text("Cancels on")
    expect(page.get_by_role("button", name="Resume subscription")).to_be_visible()
    page.get_by_role("button", name="Resume subscription").click()
    expect(page.locator(".status.ok")).to_contain_text("Renews on")
    expect(page.get_by_role("button", name="Resume subscription")).to_have_count(0)


@full_size_only()
def test_the_billing_page_shows_the_card_the_bundle_receipt_and_takes_billing_details(
    page, live_server, stripe_server
):
    from playwright.sync_api import expect

    sign_up(page, live_server.url, email="receipts@example.com")
    page.get_by_role("button", name="Choose Pro monthly").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page, card="5555 5555 5555 4444")
    expect(page.locator("#activation")).to_contain_text("You are on Pro", timeout=TIMEOUT_MS)
    page.goto(f"{live_server.url}/billing/")
    page.get_by_role("button", name="Buy 250 credits for $10").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    expect(page.locator("#activation")).to_contain_text("750 credits left", timeout=TIMEOUT_MS)

    page.goto(f"{live_server.url}/billing/")
    expect(page.locator("#card-on-file")).to_contain_text("Mastercard ending in 4444")
    # Both invoices carry the same second (the offline Stripe's clock stood still): find
    # each by its text, not its place.
    rows = page.locator("table.invoices tbody tr")
    expect(rows).to_have_count(2)
    receipt = rows.filter(has_text="(receipt)")
    expect(receipt).to_contain_text("250 credits (credit bundle)")
    expect(receipt).to_contain_text("Paid on")
    expect(receipt.get_by_role("link", name=re.compile("^PDF"))).to_have_attribute(
        "href", re.compile(r"/invoices/in_\w+/pdf$")
    )
    plan = rows.filter(has_text="Pro plan, monthly")
    expect(plan).to_contain_text("Paid on")

    # A tax id Stripe refuses: the form says so on the field, and nothing is saved.
    page.get_by_label("Billing e-mail").fill("accounts@acme.example")
    page.get_by_label("Tax id type").select_option("eu_vat")
    page.get_by_label("Tax id", exact=True).fill("123")
    page.get_by_role("button", name="Save at Stripe").click()
    expect(page.locator(".field-error")).to_contain_text("Invalid value for eu_vat")
    expect(page.locator("#tax-ids")).to_have_count(0)
    page.get_by_label("Tax id", exact=True).fill("DE123456789")
    page.get_by_role("button", name="Save at Stripe").click()
    expect(page.locator(".messages, [role=status]").first).to_contain_text("Saved at Stripe")
    expect(page.locator("#tax-ids")).to_contain_text("DE123456789")
    expect(page.get_by_label("Billing e-mail")).to_have_value("accounts@acme.example")
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@full_size_only()
def test_support_sees_credits_first_and_stripe_objects_folded_away(page, live_server):
    from playwright.sync_api import expect

    from subscriptions.services import credits_adjust
    from subscriptions.tests.factories import PASSWORD, UserFactory

    customer = UserFactory.create(email="paying@example.com")
    UserFactory.create(email="desk@example.com", is_staff=True, is_superuser=True)
    reason = "Goodwill after the outage on 3 Nov, agreed with the customer in ticket 4711. " * 3
    credits_adjust(
        user=customer, amount=25, reason=reason.strip(), staff_user=None, idempotency_key="g"
    )
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("desk@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    mirror = page.locator("#stripe-mirror")
    expect(mirror).to_be_visible()
    expect(mirror.get_by_role("link", name="Customers")).to_be_hidden()  # folded

    page.goto(f"{live_server.url}/admin/auth/user/{customer.pk}/change/")
    # Both panels start in the first screen (900 px), above the user form's fields.
    for panel in ("#credits-panel", "#ledger-latest"):
        box = page.locator(panel).bounding_box()
        assert box is not None and box["y"] < 900, panel
    expect(page.locator("#credits-panel")).to_contain_text("75")  # 50 free + 25
    expect(page.locator("#ledger-latest")).to_contain_text("+25 purchased")

    page.goto(f"{live_server.url}/admin/activities/ledgerentry/")
    cell = page.locator("td.field-reason_short .ledger-reason").first
    expect(cell).to_have_attribute("title", reason.strip())
    # The list fits the window: Source and Reason are on screen, not scrolled out of sight.
    results = page.locator("#changelist-form .results")
    assert results.evaluate("el => el.scrollWidth <= el.clientWidth")
    for column in ("td.field-source_link", "td.field-reason_short"):
        box = page.locator(column).first.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, column


@full_size_only()
def test_a_customer_life_subscribe_upgrade_fail_pay_downgrade_cancel_return_and_top_up(
    page, live_server, stripe_server
):
    """Issue 16's whole journey, as a person clicks it: each page right when it opens, with
    Stripe's clock moved a month at a time (the test is Stripe's calendar, nothing else)."""
    import time

    from django.core import mail
    from playwright.sync_api import expect

    from subscriptions.models import CreditAccount

    base, email, day = live_server.url, "life@example.com", 86_400

    def account() -> CreditAccount:
        return CreditAccount.objects.get(user__email=email)

    def once(check, what: str) -> None:
        """Wait for Stripe's webhooks (delivered in the background) to be applied."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not check():
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.05)

    def portal_card(number: str) -> None:
        page.get_by_label("New card number").fill(number)
        page.get_by_role("button", name="Update card").click()
        expect(page.get_by_text(f"Card ending {number[-4:]} saved.")).to_be_visible()
        page.get_by_role("link", name="Return to the site").click()
        page.wait_for_url(re.compile(r"/billing/"))

    # Subscribe to Pro, then upgrade to Elite seeing the price first.
    sign_up(page, base, email=email)
    page.get_by_role("button", name="Choose Pro monthly").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    expect(page.locator("#activation")).to_contain_text("You are on Pro", timeout=TIMEOUT_MS)
    page.goto(f"{base}/billing/")
    page.get_by_role("button", name="Upgrade to Elite").click()
    expect(page.get_by_test_id("due-today")).to_have_text(re.compile(r"^\$\d"))
    page.get_by_role("button", name="Switch to Elite").click()
    expect(page.get_by_role("heading", name="Elite plan")).to_be_visible()

    # A card that pays today and fails later, saved in Stripe's portal.
    page.get_by_role("button", name="Update card").click()
    portal_card("4000 0000 0000 0341")
    expect(page.locator("#card-on-file")).to_contain_text("ending in 0341")

    # A month on, the renewal fails: every page says so and offers to pay.
    stripe_server.advance_clock(31 * day + 3600)
    once(lambda: account().subscription_status == "past_due", "past due")
    page.goto(f"{base}/pricing/")
    banner = page.locator(".dunning")
    expect(banner).to_contain_text("Your last payment for Elite failed.")
    # The e-mail's link is the open invoice's page, where the banner's "Pay now" leads too.
    once(lambda: [m for m in mail.outbox if "Pay now: http" in m.body], "the e-mail")
    [told] = [m for m in mail.outbox if "Pay now: http" in m.body]
    assert told.to == [email]
    banner.get_by_role("link", name=re.compile("^Pay now")).click()
    assert page.url in told.body
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"^Pay \d")).click()
    expect(page.get_by_role("status")).to_contain_text("Paid")
    once(lambda: account().subscription_status == "active", "paid again")
    page.goto(f"{base}/billing/")
    expect(page.locator(".dunning")).to_have_count(0)
    expect(page.locator(".status.ok")).to_contain_text("Renews on")
    page.get_by_role("button", name="Manage billing").click()
    portal_card("4242 4242 4242 4242")  # and a card that keeps working from now on

    # Downgrade at the period end, then cancel: each page shows it when it opens.
    page.get_by_role("button", name="Downgrade to Pro").click()
    expect(page.locator(".status.notice")).to_contain_text("Nothing is charged today")
    page.get_by_role("button", name="Switch to Pro").click()
    expect(page.locator(".status.notice")).to_contain_text("Changes to Pro on")
    page.locator("#cancel summary").click()
    page.get_by_role("button", name="Cancel at period end").click()
    expect(page.locator(".status.notice")).to_contain_text("Cancels on")
    expect(page.get_by_text("No further payments.")).to_be_visible()

    # The period ends: the page says why, what is kept, and offers the way back.
    stripe_server.advance_clock(32 * day)
    once(lambda: account().tier == "free", "the plan ended")
    page.goto(f"{base}/billing/")
    ended = page.locator("#plan-ended")
    expect(ended).to_contain_text("Your Elite plan ended")
    expect(ended).to_contain_text("You cancelled it.")
    ended.get_by_role("button", name="Subscribe to Elite again").click()
    page.wait_for_url(re.compile(r"/checkout/cs_"))
    pay_on_stripe(page)
    expect(page.locator("#activation")).to_contain_text("You are on Elite", timeout=TIMEOUT_MS)

    # Auto top-up: below the threshold, a bundle is bought with the saved card.
    page.goto(f"{base}/billing/")
    left = account().remaining
    page.get_by_label(re.compile("^Auto top-up")).fill(str(left - 10))
    page.locator("#auto-topup").get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text(f"When fewer than {left - 10:,} credits")
    spend_as_the_spa(page, base, email, 20)
    page.goto(f"{base}/billing/")
    expect(page.locator(".big-number")).to_contain_text(f"{left - 20 + 250:,} left")
    expect(page.get_by_text("+ 250 purchased")).to_be_visible()


@full_size_only()
def test_time_travel_in_make_run_moves_stripe_and_the_app_together(
    page, live_server, stripe_server, settings
):
    """`make run`: the footer's "Time travel" opens the offline Stripe's clock; a month on,
    the renewal is on the billing page and the app's own dates have moved with it."""
    import time
    from datetime import timedelta

    from playwright.sync_api import expect

    from billing import devclock
    from subscriptions.models import CreditAccount

    settings.DEBUG = True  # the clock is only ever followed in development
    settings.SESSION_COOKIE_AGE = 10 * 365 * 86400  # as settings.py sets it for make run
    clock = devclock.install()
    assert clock is not None
    try:
        base, email = live_server.url, "traveller@example.com"
        sign_up(page, base, email=email)
        page.get_by_role("button", name="Choose Pro monthly").click()
        page.wait_for_url(re.compile(r"/checkout/cs_"))
        pay_on_stripe(page)
        expect(page.locator("#activation")).to_contain_text("500 credits", timeout=TIMEOUT_MS)
        spend_as_the_spa(page, base, email, 100)
        page.goto(f"{base}/billing/")
        expect(page.locator(".big-number")).to_contain_text("400 left")
        first_period = CreditAccount.objects.get(user__email=email).period_end

        page.locator(".test-clock").get_by_role("link", name="Time travel").click()
        expect(page.get_by_role("heading", name="Test clock")).to_be_visible()
        page.get_by_role("button", name="Advance 32 days").click()
        expect(page.get_by_role("status")).to_contain_text("Advanced 32 days.")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while CreditAccount.objects.get(user__email=email).period_start < first_period:
            assert time.monotonic() < deadline, "the renewal never reached the app"
            time.sleep(0.05)
        time.sleep(devclock.REFRESH_SECONDS)  # the app reads Stripe's clock once a second
        page.get_by_role("link", name="Back to the app").click()
        page.wait_for_url(f"{base}/billing/")
        expect(page.locator(".big-number")).to_contain_text("500 left")  # renewed
        # The app's "now" is Stripe's: the new period resets in about a month, not two.
        resets = page.locator("li", has_text="Resets on").inner_text()
        days = re.search(r"in (\d+) day", resets)
        assert days is not None and 27 <= int(days.group(1)) <= 31, resets
        a_day_into_the_new_period = first_period + timedelta(days=1)
        expect(page.locator(".test-clock time")).to_contain_text(
            f"{a_day_into_the_new_period:%-d %b %Y}"
        )
    finally:
        devclock.uninstall()

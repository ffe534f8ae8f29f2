"""Hosted pages a person can use in a browser: Checkout, the customer portal, invoices.

Plain HTML and forms (no JavaScript), readable on a phone. Every POST answers with a 303
redirect, or re-renders the form with the error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from . import billing
from .api import attach_payment_method, create_payment_method, set_default_payment_method
from .checkout import TEST_CARDS, complete, normalise_card, success_url
from .core import Request, Response, Routes
from .errors import StripeError
from .sca import SCA_CARDS

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()

STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:0 auto;padding:1rem;line-height:1.5;
color:#1a1a1a;background:#fafafa}
h1{font-size:1.4rem}table{width:100%;border-collapse:collapse}td,th{padding:.4rem;text-align:left;
border-bottom:1px solid #ddd}label{display:block;margin-top:.8rem;font-weight:600}
input,select{width:100%;padding:.6rem;font-size:1rem;box-sizing:border-box;border:1px solid #888;
border-radius:4px}button{margin-top:1rem;padding:.7rem 1.2rem;font-size:1rem;border:0;
border-radius:4px;background:#3b3bd4;color:#fff;cursor:pointer}
button.secondary{background:#555}button.danger{background:#b00020}
.error{background:#fde7ea;border:1px solid #b00020;padding:.6rem;border-radius:4px;color:#6b0013}
.note{color:#555;font-size:.9rem}form.inline{margin:.5rem 0}section{margin:1.5rem 0}
"""


def page(title: str, body: str, status: int = 200) -> Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main>"
        "<footer class='note'><p>Stripe emulator: test mode only, no real payments.</p></footer>"
        "</body></html>"
    )
    return Response.html(status, html)


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"


def form_value(req: Request, name: str) -> str:
    value = req.params.get(name, "")
    return value if isinstance(value, str) else ""


# --- checkout ---------------------------------------------------------------------------
def render_checkout(
    emu: Emulator, session: dict[str, Any], error: str | None = None, status: int = 200
) -> Response:
    items = emu.store.note(session["id"]).get("line_items", [])
    rows = "".join(
        f"<tr><td>{escape(i['description'] or '')} × {i['quantity']}</td>"
        f"<td>{money(i['amount_total'], i['currency'])}"
        f"{' / ' + escape(i['price']['recurring']['interval']) if i['price']['recurring'] else ''}"
        "</td></tr>"
        for i in items
    )
    cards = "".join(
        f"<li><code>{n[:4]} {n[4:8]} {n[8:12]} {n[12:]}</code> {escape(what)}</li>"
        for n, what in TEST_CARDS.items()
    )
    if session["status"] != "open":
        return page("Checkout", f"<h1>Checkout</h1><p>This session is {session['status']}.</p>")
    email_field = ""
    if not session["customer"]:
        email_field = (
            "<label for='email'>Email</label>"
            f"<input id='email' name='email' type='email' autocomplete='email' "
            f"value='{escape(session['customer_email'] or '')}'>"
        )
    err = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    promo_field = (
        "<label for='promo'>Promotion code</label>"
        "<input id='promo' name='promotion_code' autocomplete='off'>"
        if session["allow_promotion_codes"]
        else ""
    )
    cancel = (
        f"<p><a href='{escape(session['cancel_url'])}'>Cancel and return</a></p>"
        if session["cancel_url"]
        else ""
    )
    body = f"""
<h1>{"Subscribe" if session["mode"] == "subscription" else "Pay"}</h1>
<table aria-label="Order summary"><tbody>{rows}</tbody>
<tfoot><tr><th>Total due today</th><th>{money(session["amount_total"] or 0, session["currency"])}
</th></tr></tfoot></table>
{err}
<form method="post" action="/checkout/{escape(session["id"])}">
{email_field}
<label for="card">Card number</label>
<input id="card" name="card_number" inputmode="numeric" autocomplete="cc-number" required
 placeholder="4242 4242 4242 4242" value="">
<label for="exp">Expiry (MM/YY)</label>
<input id="exp" name="exp" autocomplete="cc-exp" placeholder="12/34" value="12/34">
<label for="cvc">CVC</label>
<input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" placeholder="123" value="123">
{promo_field}
<button type="submit">{"Subscribe" if session["mode"] == "subscription" else "Pay"}</button>
</form>
{cancel}
<section class="note"><h2>Test cards</h2><ul>{cards}</ul></section>
"""
    return page("Checkout", body, status)


@routes("GET", r"/checkout/(?P<oid>[^/]+)")
def checkout_page(emu: Emulator, req: Request, oid: str) -> Response:
    with emu.lock:
        session = emu.get("checkout.session", oid)
        return render_checkout(emu, session)


def parse_expiry(text: str) -> tuple[int, int]:
    month, _, year = text.partition("/")
    try:
        m, y = int(month), int(year)
    except ValueError:
        return 12, 2034
    return m, (2000 + y if y < 100 else y)


def render_challenge(session: dict[str, Any], req: Request) -> Response:
    """3-D Secure: the issuer's page asks the customer to confirm before the payment."""
    hidden = "".join(
        f"<input type='hidden' name='{name}' value='{escape(form_value(req, name))}'>"
        for name in ("card_number", "exp", "email", "promotion_code")
    )
    body = f"""
<h1>3-D Secure test payment</h1>
<p>Your bank asks you to confirm this payment of
{money(session["amount_total"] or 0, session["currency"])}.</p>
<form method="post" action="/checkout/{escape(session["id"])}">{hidden}
<button name="three_d_secure" value="complete" type="submit">Complete authentication</button>
<button name="three_d_secure" value="fail" type="submit" class="secondary">
Fail authentication</button>
</form>"""
    return page("3-D Secure", body)


@routes("POST", r"/checkout/(?P<oid>[^/]+)")
def checkout_submit(emu: Emulator, req: Request, oid: str) -> Response:
    month, year = parse_expiry(form_value(req, "exp"))
    number = normalise_card(form_value(req, "card_number"))
    if number in SCA_CARDS and not form_value(req, "three_d_secure"):
        with emu.lock:
            return render_challenge(emu.get("checkout.session", oid), req)
    try:
        with emu.transaction():
            session = complete(
                emu,
                oid,
                number,
                email=form_value(req, "email") or None,
                exp_month=month,
                exp_year=year,
                promotion_code=form_value(req, "promotion_code") or None,
                three_d_secure=form_value(req, "three_d_secure") or "complete",
            )
            target = success_url(session)
    except StripeError as err:
        with emu.lock:
            session = emu.get("checkout.session", oid)
            return render_checkout(emu, session, err.message, status=err.status)
    return Response.redirect(target)


# --- customer portal --------------------------------------------------------------------
def portal_subscriptions(emu: Emulator, customer_id: str) -> list[dict[str, Any]]:
    return [
        s
        for s in emu.store.all("subscription")
        if s["customer"] == customer_id and s["status"] not in ("canceled", "incomplete_expired")
    ]


def render_portal(
    emu: Emulator, bps: dict[str, Any], message: str | None = None, status: int = 200
) -> Response:
    cus = emu.get("customer", bps["customer"])
    subs = portal_subscriptions(emu, cus["id"])
    base = f"/portal/{escape(bps['id'])}"
    parts = [f"<h1>Your subscription</h1><p>{escape(cus['email'] or cus['id'])}</p>"]
    if message:
        parts.append(f"<p class='error' role='alert'>{escape(message)}</p>")
    pm_id = cus["invoice_settings"]["default_payment_method"]
    pm = emu.store.get(pm_id) if pm_id else None
    if not subs:
        parts.append("<p>No active subscription.</p>")
    from .portal import portal_prices

    config = emu.store.get(bps["configuration"]) or {}
    for sub in subs:
        item = sub["items"]["data"][0]
        price = item["price"]
        product = emu.store.get(price["product"]) or {"name": price["product"]}
        end = item["current_period_end"]
        state = sub["status"]
        if sub["cancel_at"]:
            state += f", cancels on {billing.fmt_date(sub['cancel_at'])}"
        else:
            state += f", renews on {billing.fmt_date(end)}"
        schedule = emu.store.get(sub["schedule"]) if sub["schedule"] else None
        for phase in (schedule or {}).get("phases", []):
            if phase["start_date"] == end:
                nxt = emu.store.get(phase["items"][0]["price"]) or {}
                name = (emu.store.get(nxt.get("product", "")) or {}).get("name", nxt.get("id"))
                state += f"; changes to {name} on {billing.fmt_date(end)}"
        if sub.get("pending_update"):
            state += "; a plan change waits for its payment"
        recurring = portal_prices(emu, config, price) if config else []
        options = "".join(
            f"<option value='{escape(p['id'])}'>"
            f"{escape((emu.store.get(p['product']) or {}).get('name', p['product']))}: "
            f"{money(p['unit_amount'], p['currency'])} / {escape(p['recurring']['interval'])}"
            "</option>"
            for p in recurring
        )
        sid = escape(sub["id"])
        switch = (
            f"<form class='inline' method='post' action='{base}'>"
            f"<input type='hidden' name='action' value='switch'>"
            f"<input type='hidden' name='subscription' value='{sid}'>"
            f"<label for='price-{sid}'>Switch plan</label>"
            f"<select id='price-{sid}' name='price'>{options}</select>"
            "<button type='submit'>Switch plan</button></form>"
            if options
            else ""
        )

        def action(name: str, label: str, css: str = "secondary", sid: str = sid) -> str:
            return (
                f"<form class='inline' method='post' action='{base}'>"
                f"<input type='hidden' name='action' value='{name}'>"
                f"<input type='hidden' name='subscription' value='{sid}'>"
                f"<button class='{css}' type='submit'>{label}</button></form>"
            )

        cancel = (
            action("resume", "Resume (don't cancel)")
            if sub["cancel_at_period_end"] or sub["cancel_at"]
            else action("cancel_at_period_end", "Cancel at period end")
        )
        parts.append(
            f"<section><h2>{escape(product['name'])}</h2>"
            f"<p>{money(price['unit_amount'], price['currency'])} / "
            f"{escape(price['recurring']['interval'])} ({escape(state)})</p>"
            f"{switch}{cancel}{action('cancel_now', 'Cancel now', 'danger')}</section>"
        )
    card = f"{pm['card']['brand']} •••• {pm['card']['last4']}" if pm and pm["card"] else "none"
    parts.append(
        f"<section><h2>Payment method</h2><p>Current card: {escape(card)}</p>"
        f"<form method='post' action='{base}'><input type='hidden' name='action' value='card'>"
        "<label for='card'>New card number</label>"
        "<input id='card' name='card_number' inputmode='numeric' autocomplete='cc-number' "
        "placeholder='4000 0000 0000 0341' required>"
        "<p class='note'>Use 4000 0000 0000 0341 to make the next renewal fail.</p>"
        "<button type='submit'>Update card</button></form></section>"
    )
    if bps["return_url"]:
        parts.append(f"<p><a href='{escape(bps['return_url'])}'>Return to the site</a></p>")
    return page("Billing portal", "".join(parts), status)


@routes("GET", r"/portal/(?P<oid>[^/]+)")
def portal_page(emu: Emulator, req: Request, oid: str) -> Response:
    with emu.lock:
        bps = emu.get("billing_portal.session", oid)
        message = form_value(req, "message") or None
        return render_portal(emu, bps, message)


@routes("POST", r"/portal/(?P<oid>[^/]+)")
def portal_action(emu: Emulator, req: Request, oid: str) -> Response:
    action = form_value(req, "action")
    message = ""
    try:
        with emu.transaction():
            bps = emu.get("billing_portal.session", oid)
            message = run_portal_action(emu, bps, action, req.params)
    except StripeError as err:
        message = err.message
    return Response.redirect(f"/portal/{oid}?message={quote(message)}")


def run_portal_action(emu: Emulator, bps: dict[str, Any], action: str, form: dict[str, Any]) -> str:
    cus = emu.get("customer", bps["customer"])
    if action == "card":
        number = normalise_card(form.get("card_number", ""))
        if len(number) < 12:
            raise StripeError(400, "Enter a full card number.")
        pm = create_payment_method(emu, number)
        attach_payment_method(emu, pm["id"], cus["id"])
        set_default_payment_method(emu, cus, pm["id"])
        for sub in portal_subscriptions(emu, cus["id"]):
            billing.update_subscription(emu, sub, {"default_payment_method": pm["id"]})
        return f"Card ending {pm['card']['last4']} saved."
    sub_id = form.get("subscription", "")
    sub = emu.get("subscription", sub_id if isinstance(sub_id, str) else "")
    if sub["customer"] != cus["id"]:
        raise StripeError(403, "That subscription belongs to another customer.")
    if action == "switch":
        from .portal import portal_switch

        config = emu.get("billing_portal.configuration", bps["configuration"])
        return portal_switch(emu, config, sub, str(form.get("price", "")))
    if action == "cancel_at_period_end":
        if sub["schedule"]:
            # The portal ends the schedule (its change no longer matters) and cancels.
            from .schedules import release

            release(emu, emu.get("subscription_schedule", sub["schedule"]))
        billing.update_subscription(emu, sub, {"cancel_at_period_end": True})
        return "Your subscription will end at the end of the period."
    if action == "resume":
        billing.update_subscription(emu, sub, {"cancel_at_period_end": False, "cancel_at": ""})
        return "Your subscription will continue."
    if action == "cancel_now":
        billing.cancel_now(emu, sub)
        return "Your subscription was canceled."
    raise StripeError(400, f"Unknown action: {action}")


# --- hosted invoice ---------------------------------------------------------------------
@routes("GET", r"/invoices/(?P<oid>in_[^/]+)(?P<pdf>/pdf)?")
def invoice_page(emu: Emulator, req: Request, oid: str, pdf: str | None = None) -> Response:
    with emu.lock:
        inv = emu.get("invoice", oid)
        rows = "".join(
            f"<tr><td>{escape(line['description'] or '')}</td>"
            f"<td>{money(line['amount'], line['currency'])}</td></tr>"
            for line in inv["lines"]["data"]
        )
        waiting = [
            p["payment"]["payment_intent"]
            for p in emu.store.all("invoice_payment")
            if p["invoice"] == oid and p["status"] == "open"
        ]
        confirm = ""
        for pi_id in waiting:
            pi = emu.store.get(pi_id) or {}
            if pi.get("status") == "requires_action" and inv["status"] == "open":
                confirm = (
                    f"<p><a href='/authenticate/{escape(pi_id)}'>Confirm this payment "
                    "(3-D Secure)</a></p>"
                )
        message = form_value(req, "message")
        pay = ""
        if inv["status"] == "open" and not confirm and not pdf:
            # As on Stripe's hosted invoice page: the customer pays what is due with a card.
            pay = (
                f"<form method='post' action='/invoices/{escape(oid)}'>"
                "<label for='card'>Card number</label>"
                "<input id='card' name='card_number' inputmode='numeric' "
                "autocomplete='cc-number' placeholder='4242 4242 4242 4242' required>"
                f"<button>Pay {money(inv['amount_remaining'], inv['currency'])}</button></form>"
            )
        body = (
            f"<h1>Invoice {escape(inv['number'] or inv['id'])}</h1>"
            + (f"<p class='note' role='status'>{escape(message)}</p>" if message else "")
            + f"<p>Status: {escape(inv['status'] or '')}</p>{confirm}"
            f"<table><tbody>{rows}</tbody><tfoot><tr><th>Total</th>"
            f"<th>{money(inv['total'], inv['currency'])}</th></tr></tfoot></table>{pay}"
        )
        return page("Invoice", body)


@routes("POST", r"/invoices/(?P<oid>in_[^/]+)")
def invoice_pay_submit(emu: Emulator, req: Request, oid: str) -> Response:
    """Pay an open invoice with a card on its hosted page (on-session: the card is the
    customer's, saved to them as Stripe's page does, not made their default)."""
    number = normalise_card(form_value(req, "card_number"))
    try:
        with emu.transaction():
            inv = emu.get("invoice", oid)
            if inv["status"] != "open":
                raise StripeError(400, f"This invoice is {inv['status']}: nothing to pay.")
            if len(number) < 12:
                raise StripeError(400, "Enter a full card number.")
            pm = create_payment_method(emu, number)
            attach_payment_method(emu, pm["id"], inv["customer"])
            if billing.pay_invoice(emu, inv, "manual", pm["id"]):
                message = "Paid. Thank you."
            elif (
                emu.get("payment_intent", billing.last_payment_intent(emu, inv))["status"]
                == "requires_action"
            ):
                message = "Your bank asks you to confirm this payment."
            else:
                message = "Your card was declined."
    except StripeError as err:
        message = err.message
    return Response.redirect(f"/invoices/{oid}?message={quote(message)}")


# --- the test clock, for a person trying renewals in a browser ------------------------------
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# (hours, label). A renewal invoice is charged about an hour after the period ends, as on
# Stripe: 32 days is safely past a monthly renewal.
CLOCK_STEPS = ((1, "1 hour"), (24, "1 day"), (24 * 7, "1 week"), (24 * 32, "32 days"))


def _return_to(req: Request) -> str:
    """Where "Back to the app" goes: a page of an app on this machine, nothing else."""
    target = form_value(req, "return_to")
    parts = urlsplit(target)
    return target if parts.scheme in {"http", "https"} and parts.hostname in LOOPBACK else ""


@routes("GET", "/_emulator/clock")
def clock_page(emu: Emulator, req: Request) -> Response:
    now = datetime.fromtimestamp(emu.now(), tz=UTC)
    back = _return_to(req)
    message = form_value(req, "message")
    steps = "".join(
        "<form method='post' action='/_emulator/clock' class='inline'>"
        f"<input type='hidden' name='hours' value='{hours}'>"
        f"<input type='hidden' name='return_to' value='{escape(back)}'>"
        f"<button type='submit'>Advance {label}</button></form>"
        for hours, label in CLOCK_STEPS
    )
    body = (
        "<h1>Test clock</h1>"
        + (f"<p class='note' role='status'>{escape(message)}</p>" if message else "")
        + f"<p>Stripe's time here: <strong id='now'>{now:%d %b %Y, %H:%M} UTC</strong></p>"
        "<p class='note'>Advancing runs what falls due meanwhile, as Stripe's test clocks do: "
        "renewals, payment retries, cancellations at the period end, and their webhooks. "
        "An app following this clock (make run) moves with it.</p>"
        f"<section>{steps}</section>"
        + (f"<p><a href='{escape(back)}'>Back to the app</a></p>" if back else "")
    )
    return page("Test clock", body)


@routes("POST", "/_emulator/clock")
def clock_submit(emu: Emulator, req: Request) -> Response:
    hours = form_value(req, "hours")
    if hours.isdigit() and 0 < int(hours) <= 24 * 3660:
        emu.advance_clock(int(hours) * 3600)
        label = dict(CLOCK_STEPS).get(int(hours), f"{hours} hours")
        message = f"Advanced {label}."
    else:
        message = "Advance by a whole number of hours."
    query = urlencode({"message": message, "return_to": _return_to(req)})
    return Response.redirect(f"/_emulator/clock?{query}")

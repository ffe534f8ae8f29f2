"""The pricing and billing pages: parse, call one service or selector, render.

POST actions are rate limited like the API and answer domain errors through
``hrvstr.page_errors.page_errors``; a successful action redirects (POST/redirect/GET) so a reload
never repeats it.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from activities.charts import bar_chart
from billing import customer_details, dunning, gateway, selectors
from billing import services as billing_services
from billing.apis import BILLING_RATE
from billing.auto_topup import bundle_for as auto_topup_bundle_for
from billing.checkout_return import checkout_return_apply
from billing.forms import (
    AutoTopUpForm,
    BillingDetailsForm,
    CancelForm,
    CheckoutForm,
    LowCreditForm,
    PlanForm,
    TaxIdRemoveForm,
)
from hrvstr.formatting import cents
from hrvstr.http import AuthenticatedHttpRequest
from hrvstr.page_errors import error_page, page_errors
from subscriptions import catalogue
from subscriptions.services import auto_topup_below_set, low_credit_threshold_set

# The API's own limits (same rates, same keys), so the pages are no way around them.
ratelimit_billing = ratelimit(key="user_or_ip", rate=BILLING_RATE, method="POST", block=True)


def _invalid(request: HttpRequest, form: forms.Form) -> HttpResponse:
    message = " ".join(str(e) for errors in form.errors.values() for e in errors)
    return error_page(request, code="invalid", message=message or "Invalid request", status=400)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("billing" if request.user.is_authenticated else "pricing")


@require_GET
@page_errors
def pricing(request: HttpRequest) -> HttpResponse:
    account = (
        selectors.account_for(user=request.user, now=timezone.now())
        if request.user.is_authenticated
        else None
    )
    context = {
        "cards": selectors.pricing_cards(account=account),
        "account": account,
        "bundles": list(catalogue.BUNDLES.values()),
    }
    return render(request, "billing/pricing.html", context)


@require_GET
@login_required
@page_errors
def billing(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _billing_page(request)


def _billing_page(
    request: AuthenticatedHttpRequest, details_form: BillingDetailsForm | None = None
) -> HttpResponse:
    overview = selectors.billing_overview(user=request.user, now=timezone.now())
    if details_form is None:
        details_form = BillingDetailsForm(initial={"email": overview["details"]["email"]})
    context = {**overview, "details_form": details_form}
    return render(
        request, "billing/billing.html", context, status=400 if details_form.errors else 200
    )


@require_POST
@login_required
@page_errors
@ratelimit_billing
def billing_details(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Set the billing e-mail and add a tax id at Stripe; a value Stripe refuses comes back as
    the form's error, with nothing changed."""
    form = BillingDetailsForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            changed = customer_details.billing_details_update(
                user=request.user,
                email=data["email"],
                tax_id_type=data["tax_id_type"],
                tax_id_value=data["tax_id_value"],
            )
        except gateway.StripeInputInvalid as exc:
            field = form.STRIPE_PARAMS.get(exc.extra.get("param") or "")
            form.add_error(field, f"Stripe did not accept this: {exc.message}")
        else:
            messages.success(
                request,
                f"Saved at Stripe: {' and '.join(changed)}." if changed else "Nothing to change.",
            )
            return redirect("billing")
    return _billing_page(request, form)


@require_POST
@login_required
@page_errors
@ratelimit_billing
def tax_id_remove(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TaxIdRemoveForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    customer_details.tax_id_remove(user=request.user, tax_id=form.cleaned_data["tax_id"])
    messages.success(request, "Tax id removed.")
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def checkout(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    data = form.cleaned_data
    account = selectors.account_for(user=request.user, now=timezone.now())
    start = billing_services.checkout_session_create(
        user=request.user,
        tier=data["tier"] or None,
        interval=data["interval"],
        bundle=data["bundle"] or None,
    )
    # What the account looked like before paying: the success page waits for it to change.
    request.session["checkout"] = {
        "id": start.session_id,
        "kind": "bundle" if data["bundle"] else "plan",
        "tier": account.tier,
        "purchased": account.purchased_balance,
    }
    return HttpResponseRedirect(start.url, status=303)


@require_http_methods(["GET", "POST"])
@login_required
@page_errors
@ratelimit_billing
def change_plan(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: what the change will cost and when (a plan change charges at once, so it is
    confirmed first). POST: ask Stripe for it."""
    form = PlanForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        return _invalid(request, form)
    if request.method == "GET":
        preview = selectors.plan_change_preview(
            account=selectors.account_for(user=request.user, now=timezone.now()),
            tier=form.cleaned_data["tier"],
            interval=form.cleaned_data["interval"],
        )
        return render(request, "billing/change_plan_confirm.html", preview)
    tier = catalogue.TIERS[form.cleaned_data["tier"]]
    interval = form.cleaned_data["interval"]
    try:
        billing_services.subscription_change_plan(
            user=request.user,
            tier=tier.key,
            interval=interval,
            proration_date=form.cleaned_data["proration_date"],
        )
    except billing_services.PreviewOutdated as exc:
        messages.warning(request, exc.message)
        return redirect(
            f"{reverse('billing-change-plan')}?{urlencode(dict(tier=tier.key, interval=interval))}"
        )
    level, message = selectors.plan_change_outcome(user=request.user, tier=tier.key)
    messages.add_message(request, level, message)
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def portal(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Back through card_updated: it reads what changed in the portal, and for a past-due
    # customer (with the token) pays the open invoice with the new card at once.
    return_url = f"{settings.SITE_URL}{reverse('billing-card-updated')}"
    account = selectors.account_for(user=request.user, now=timezone.now())
    if dunning.dunning_for(account) is not None:
        return_url += f"?t={dunning.return_token(account)}"
    url = billing_services.portal_session_create(user=request.user, return_url=return_url)
    return HttpResponseRedirect(url, status=303)


@require_GET
@login_required
@page_errors
@ratelimit(key="user_or_ip", rate=BILLING_RATE, method="GET", block=True)
def pay_now(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The banner's "Pay now" before the open invoice has synced: to its hosted page."""
    account = selectors.account_for(user=request.user, now=timezone.now())
    if dunning.dunning_for(account) is not None and (url := dunning.open_invoice_page(account)):
        return HttpResponseRedirect(url)
    messages.info(request, "There is nothing to pay right now.")
    return redirect("billing")


@require_GET
@login_required
@page_errors
@ratelimit(key="user_or_ip", rate=BILLING_RATE, method="GET", block=True)
def card_updated(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Where the portal returns: what the customer changed there is read from Stripe first
    (the billing page is right at once); a past-due customer's open invoice is then paid with
    the (new) default card, and the page says whether it worked. Paying needs the token our
    portal session carried: a link from elsewhere cannot make this page charge a card."""
    customer_details.portal_return_refresh(user=request.user)
    account = selectors.account_for(user=request.user, now=timezone.now())
    if dunning.return_token_valid(account, request.GET.get("t", "")):
        outcome = dunning.open_invoice_retry(account=account)
        if outcome is not None:
            (messages.success if outcome.paid else messages.error)(request, outcome.message)
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def auto_topup(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Turn auto top-up on (below a threshold) or off; only where the plan sells bundles."""
    form = AutoTopUpForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    below = form.cleaned_data["below"]
    account = selectors.account_for(user=request.user, now=timezone.now())
    bundle = auto_topup_bundle_for(account)
    if below and bundle is None:
        return error_page(
            request,
            code="bundle_requires_paid_tier",
            message="Credit bundles, and so auto top-up, come with paid plans.",
            status=403,
        )
    auto_topup_below_set(user=request.user, below=below)
    messages.success(
        request,
        f"When fewer than {below:,} credits are left we buy {bundle.name} for "
        f"{cents(bundle.price_cents)} with your saved card, at most "
        f"{settings.AUTO_TOPUP_MAX_PER_PERIOD} times a month."
        if below and bundle is not None
        else "Auto top-up is off.",
    )
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def low_credits(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = LowCreditForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    threshold = form.cleaned_data["threshold"]
    low_credit_threshold_set(user=request.user, threshold=threshold)
    messages.success(
        request,
        f"We will e-mail you when fewer than {threshold:,} credits are left."
        if threshold
        else "No more low-credit e-mails.",
    )
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def subscription_cancel(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = CancelForm(request.POST)
    immediate = form.is_valid() and form.cleaned_data["immediate"]
    billing_services.subscription_cancel(user=request.user, immediate=immediate)
    messages.success(
        request,
        "Your subscription is cancelled."
        if immediate
        else "Your subscription will end with the paid period. You can resume it until then.",
    )
    return redirect("billing")


@require_POST
@login_required
@page_errors
@ratelimit_billing
def subscription_resume(request: AuthenticatedHttpRequest) -> HttpResponse:
    billing_services.subscription_resume(user=request.user)
    messages.success(request, "Your subscription continues.")
    return redirect("billing")


@require_GET
@login_required
@page_errors
def checkout_success(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Stripe sent the customer back. The page fetches the session from Stripe and applies it
    by the webhooks' rules (billing/checkout_return.py), so it does not wait on the webhook
    queue; if Stripe does not answer it says so, and polls tier-info to update itself."""
    session_id = request.GET.get("session_id", "")[:255]
    started = request.session.get("checkout") or {}

    def progress() -> dict:
        return selectors.checkout_progress(
            account=selectors.account_for(user=request.user, now=timezone.now()),
            started=started,
            session_id=session_id,
        )

    context = progress()
    if not context["activated"] and checkout_return_apply(
        user=request.user, session_id=session_id, now=timezone.now()
    ):
        context["account"].refresh_from_db()  # the user's cached account, changed meanwhile
        context = progress()
    return render(request, "billing/checkout_success.html", context)


RETURN_WAIT_SECONDS = 15


@require_GET
def checkout_return(request: HttpRequest) -> HttpResponse:
    """Stripe sent an SPA customer back: wait for the webhook (a page that reloads itself each
    second, up to 15 s), then go on to the SPA's own success page. Public: it shows nothing but
    "activating", and goes only to SITE_URL or a CORS_ALLOWED_ORIGINS origin."""
    try:
        target = billing_services.checkout_return_target(url=request.GET.get("next", ""))
    except billing_services.RedirectNotAllowed as exc:
        return error_page(request, code=exc.code, message=exc.message, status=exc.status)
    session_id = request.GET.get("session_id", "")[:255]
    raw = request.GET.get("waited", "0")
    waited = min(int(raw), RETURN_WAIT_SECONDS) if raw.isascii() and raw.isdigit() else 0
    if waited >= RETURN_WAIT_SECONDS or selectors.checkout_landed(session_id=session_id):
        return HttpResponseRedirect(target)
    again = request.GET.copy()
    again["waited"] = str(waited + 1)
    response = render(
        request, "billing/checkout_return.html", {"again": f"?{again.urlencode()}", "next": target}
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def checkout_cancel(request: HttpRequest) -> HttpResponse:
    request.session.pop("checkout", None)
    return render(request, "billing/checkout_cancel.html")


# Behind the admin's staff login: hrvstr/urls.py mounts it at /admin/dashboard/.
def support_dashboard(request: HttpRequest) -> HttpResponse:
    """The support dashboard: tiers, MRR, credit flow, failed webhooks, accounts in grace."""
    data = selectors.support_dashboard(now=timezone.now())
    daily = data["daily"]
    context = {
        **admin.site.each_context(request),
        **data,
        "title": "Billing dashboard",
        "granted_chart": bar_chart([(d.day, d.granted) for d in daily], label="Credits granted"),
        "spent_chart": bar_chart([(d.day, d.spent) for d in daily], label="Credits spent"),
        "daily_rows": list(reversed(daily))[:14],
    }
    return TemplateResponse(request, "billing/support_dashboard.html", context)

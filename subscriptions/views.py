"""The account pages: sign up, log in, password reset (Django's views, rate limited like the
API's auth endpoints, errors through ``hrvstr.page_errors.page_errors``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_ratelimit import ALL
from django_ratelimit.decorators import ratelimit

from hrvstr.errors import DomainError
from hrvstr.http import AuthenticatedHttpRequest
from hrvstr.page_errors import back_url, page_errors
from subscriptions.auth_apis import AUTH_RATE, user_as_json
from subscriptions.forms import SignupForm
from subscriptions.tokens import tokens_issue
from subscriptions.users import user_register

# The API's own limit (same rate, same key), so the pages are no way around it. Every form
# that takes a password (ours, the admin's log-in and password pages) is behind it; the count
# lives in the shared cache (Redis or the database), so it holds across processes.
ratelimit_auth = ratelimit(key="ip", rate=AUTH_RATE, method="POST", block=True)
# A reset link is checked on GET (its token), so that is counted too.
ratelimit_auth_any_method = ratelimit(key="ip", rate=AUTH_RATE, method=ALL, block=True)


def password_form(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A password form's view, rate limited per address, with a 429 page when over."""
    return page_errors(ratelimit_auth(view))


@page_errors
@ratelimit_auth
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("billing")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_register(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                name=form.cleaned_data["name"],
            )
        except DomainError as exc:
            form.add_error(exc.extra.get("field") or "email", exc.message)
        else:
            login(request, user, backend="hrvstr.auth.EmailBackend")
            messages.success(request, "Welcome! You are on the Free plan.")
            return redirect(back_url(request, reverse("pricing")))
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        # With the SPA served here, signing in (without a ``next``) opens it.
        if settings.SPA_DIST_DIR:
            return reverse("spa-handoff")
        return super().get_default_redirect_url()

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


login_view = page_errors(ratelimit_auth(LoginView.as_view()))

SPA_DEFAULT_PATH = "/user-home"


@require_GET
@never_cache
@login_required
def spa_handoff(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Hand the signed-in user to the SPA: a page that writes the SPA's four localStorage keys
    (``auth_token``, ``refresh_token``, ``token_expiry`` in ms, ``user``) and goes on to
    ``next`` (a path of this site), so the unmodified SPA works with e-mail and password."""
    if not settings.SPA_DIST_DIR:
        raise Http404("The SPA is not served here (SPA_DIST_DIR)")
    target = request.GET.get("next") or SPA_DEFAULT_PATH
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = SPA_DEFAULT_PATH
    tokens = tokens_issue(user=request.user)
    handoff = {
        "auth_token": tokens.access,
        "refresh_token": tokens.refresh,
        "token_expiry": str(int((time.time() + tokens.expires_in) * 1000)),
        "user": user_as_json(request.user),
        "next": target,
    }
    return render(request, "registration/spa_handoff.html", {"handoff": handoff})


password_reset_view = page_errors(
    ratelimit_auth(
        auth_views.PasswordResetView.as_view(
            email_template_name="registration/password_reset_email.txt",
            subject_template_name="registration/password_reset_subject.txt",
        )
    )
)
password_reset_confirm_view = page_errors(
    ratelimit_auth_any_method(auth_views.PasswordResetConfirmView.as_view())
)

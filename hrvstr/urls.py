from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from activities import urls as activities_urls
from billing import endpoint as billing_endpoint
from billing import urls as billing_urls
from billing import views as billing_views
from hrvstr.health import healthz
from hrvstr.spa import spa_index
from subscriptions import urls as subscriptions_urls
from subscriptions.views import password_form

handler404 = "hrvstr.errors.not_found"

djstripe_urlpatterns = [
    path(
        "webhook/<uuid:uuid>/",
        billing_endpoint.stripe_webhook_by_uuid,
        name="djstripe_webhook_by_uuid",
    ),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # The support staff's billing dashboard, behind the admin's staff login.
    path(
        "admin/dashboard/",
        admin.site.admin_view(billing_views.support_dashboard),
        name="support-dashboard",
    ),
    # The admin's password forms, rate limited like the site's log-in (they come before the
    # admin's own patterns, which would otherwise answer these paths unlimited).
    path("admin/login/", password_form(admin.site.login), name="admin-login-limited"),
    path(
        "admin/password_change/",
        admin.site.admin_view(password_form(admin.site.password_change)),
        name="admin-password-change-limited",
    ),
    path("admin/", admin.site.urls),
    path("api/", include(subscriptions_urls)),
    path("api/", include(activities_urls)),
    path("api/billing/", include(billing_urls)),
    # dj-stripe's own per-endpoint webhook URL (/stripe/webhook/<uuid>/) also works, through
    # our endpoint's checks (dj-stripe's view stores unsigned posts); same name for dj-stripe.
    path("stripe/", include((djstripe_urlpatterns, "djstripe"), namespace="djstripe")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Server-rendered pages (sign up, pricing, billing, activity) at the site root.
    path("", include(subscriptions_urls.page_urlpatterns)),
    path("", include(billing_urls.page_urlpatterns)),
    path("", include(activities_urls.page_urlpatterns)),
]

if settings.HRVSTR_BENCH_ENDPOINTS:
    from devtools.bench_apis import FloorApi

    urlpatterns.append(path("api/bench/floor", FloorApi.as_view(), name="api-bench-floor"))

# Last: the SPA's client routes (only with SPA_DIST_DIR; a 404 otherwise).
urlpatterns.append(re_path(r"^(?P<path>.*)$", spa_index, name="spa"))

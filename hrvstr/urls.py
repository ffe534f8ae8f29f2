from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from activities import urls as activities_urls
from billing import urls as billing_urls
from billing import views as billing_views
from hrvstr.health import healthz
from hrvstr.spa import spa_index
from subscriptions import urls as subscriptions_urls

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # The support staff's billing dashboard, behind the admin's staff login.
    path(
        "admin/dashboard/",
        admin.site.admin_view(billing_views.support_dashboard),
        name="support-dashboard",
    ),
    path("admin/", admin.site.urls),
    path("api/", include(subscriptions_urls)),
    path("api/", include(activities_urls)),
    path("api/billing/", include(billing_urls)),
    # dj-stripe's own per-endpoint webhook URL (/stripe/webhook/<uuid>/) also works.
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Server-rendered pages (sign up, pricing, billing, activity) at the site root.
    path("", include(subscriptions_urls.page_urlpatterns)),
    path("", include(billing_urls.page_urlpatterns)),
    path("", include(activities_urls.page_urlpatterns)),
]

if settings.HRVSTR_BENCH_ENDPOINTS:
    from hrvstr.bench_apis import FloorApi

    urlpatterns.append(path("api/bench/floor", FloorApi.as_view(), name="api-bench-floor"))

# Last: the SPA's client routes (only with SPA_DIST_DIR; a 404 otherwise).
urlpatterns.append(re_path(r"^(?P<path>.*)$", spa_index, name="spa"))

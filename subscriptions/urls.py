from django.contrib.auth import views as auth_views
from django.urls import path

from subscriptions import apis, auth_apis, views

# The JSON API, mounted at /api/ (hrvstr/urls.py).
urlpatterns = [
    path("auth/register", auth_apis.RegisterApi.as_view(), name="api-register"),
    path("auth/token", auth_apis.TokenApi.as_view(), name="api-token"),
    path("auth/token/refresh", auth_apis.TokenRefreshApi.as_view(), name="api-token-refresh"),
    # The original SPA's auth endpoints.
    path("auth/refresh", auth_apis.RefreshApi.as_view(), name="api-auth-refresh"),
    path("auth/profile", auth_apis.ProfileApi.as_view(), name="api-auth-profile"),
    path("auth/logout", auth_apis.LogoutApi.as_view(), name="api-auth-logout"),
    path("auth/google-login", auth_apis.GoogleLoginApi.as_view(), name="api-auth-google-login"),
    path("subscription/tier-info", apis.TierInfoApi.as_view(), name="api-tier-info"),
    path(
        "subscription/available-tiers",
        apis.AvailableTiersApi.as_view(),
        name="api-available-tiers",
    ),
    path("subscription/usage-stats", apis.UsageStatsApi.as_view(), name="api-usage-stats"),
    path("credits/balance", apis.BalanceApi.as_view(), name="api-credits-balance"),
    path("credits/cost/<str:action>", apis.CostApi.as_view(), name="api-credits-cost"),
    path("credits/transactions", apis.TransactionsApi.as_view(), name="api-credits-transactions"),
    path("credits/spend", apis.SpendApi.as_view(), name="api-credits-spend"),
    path("credits/holds", apis.HoldCreateApi.as_view(), name="api-credits-holds"),
    path(
        "credits/holds/<int:hold_id>/capture",
        apis.HoldCaptureApi.as_view(),
        name="api-credits-hold-capture",
    ),
    path(
        "credits/holds/<int:hold_id>/release",
        apis.HoldReleaseApi.as_view(),
        name="api-credits-hold-release",
    ),
    path("credits/unlock-component", apis.UnlockComponentApi.as_view(), name="api-unlock"),
    path(
        "credits/component-access/<str:component>",
        apis.ComponentAccessApi.as_view(),
        name="api-component-access",
    ),
    path("credits/active-sessions", apis.ActiveSessionsApi.as_view(), name="api-active-sessions"),
    path(
        "credits/recent-expirations",
        apis.RecentExpirationsApi.as_view(),
        name="api-recent-expirations",
    ),
]

# The account pages, mounted at the site root.
page_urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.login_view, name="login"),
    path("login/spa/", views.spa_handoff, name="spa-handoff"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.password_reset_view, name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        views.password_reset_confirm_view,
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

from django.contrib.auth import views as auth_views
from django.urls import path

from pages import views

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("login/", views.login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.password_reset_view, name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("pricing/", views.pricing, name="pricing"),
    path("billing/", views.billing, name="billing"),
    path("billing/checkout/", views.checkout, name="billing-checkout"),
    path("billing/change-plan/", views.change_plan, name="billing-change-plan"),
    path("billing/portal/", views.portal, name="billing-portal"),
    path(
        "billing/subscription/cancel/",
        views.subscription_cancel,
        name="billing-subscription-cancel",
    ),
    path(
        "billing/subscription/resume/",
        views.subscription_resume,
        name="billing-subscription-resume",
    ),
    path("billing/success/", views.checkout_success, name="billing-success"),
    path("billing/cancel/", views.checkout_cancel, name="billing-cancel"),
]

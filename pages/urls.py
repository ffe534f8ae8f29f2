from django.urls import path

from pages import views

urlpatterns = [
    path("", views.home, name="home"),
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

from django.urls import path

from billing import apis, endpoint, views

# The JSON API and the webhook, mounted at /api/billing/ (hrvstr/urls.py).
urlpatterns = [
    path("create-checkout-session", apis.CheckoutSessionApi.as_view(), name="api-checkout"),
    path("customer-portal", apis.CustomerPortalApi.as_view(), name="api-portal"),
    path("change-plan", apis.ChangePlanApi.as_view(), name="api-change-plan"),
    path("cancel-subscription", apis.CancelSubscriptionApi.as_view(), name="api-cancel"),
    path("resume-subscription", apis.ResumeSubscriptionApi.as_view(), name="api-resume"),
    path("subscription", apis.SubscriptionApi.as_view(), name="api-subscription"),
    path("invoices", apis.InvoicesApi.as_view(), name="api-invoices"),
    path("payment-methods", apis.PaymentMethodsApi.as_view(), name="api-payment-methods"),
    path("pricing", apis.PricingApi.as_view(), name="api-pricing"),
    path("webhook", endpoint.stripe_webhook, name="stripe-webhook"),
]

# The home redirect, the pricing and billing pages, mounted at the site root.
page_urlpatterns = [
    path("", views.home, name="home"),
    path("pricing/", views.pricing, name="pricing"),
    path("billing/", views.billing, name="billing"),
    path("billing/details/", views.billing_details, name="billing-details"),
    path("billing/details/tax-id/remove/", views.tax_id_remove, name="billing-tax-id-remove"),
    path("billing/checkout/", views.checkout, name="billing-checkout"),
    path("billing/change-plan/", views.change_plan, name="billing-change-plan"),
    path("billing/portal/", views.portal, name="billing-portal"),
    path("billing/card-updated/", views.card_updated, name="billing-card-updated"),
    path("billing/pay-now/", views.pay_now, name="billing-pay-now"),
    path("billing/low-credits/", views.low_credits, name="billing-low-credits"),
    path("billing/auto-topup/", views.auto_topup, name="billing-auto-topup"),
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
    path("billing/return/", views.checkout_return, name="billing-return"),
    path("billing/cancel/", views.checkout_cancel, name="billing-cancel"),
]

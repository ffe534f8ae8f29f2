from django.urls import path

from billing import apis, endpoint

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

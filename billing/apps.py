from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import checks, gateway, webhooks  # noqa: F401  (receivers, checks)

        # Bounded timeouts and retries from the first SDK call, dj-stripe's included.
        gateway.sdk_configure()

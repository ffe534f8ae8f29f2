from django.apps import AppConfig
from django.conf import settings


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import checks, webhooks  # noqa: F401  (connects receivers, registers checks)

        if getattr(settings, "STRIPE_FOLLOW_EMULATOR_CLOCK", False):
            from billing import devclock

            devclock.install()

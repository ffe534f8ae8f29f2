from django.apps import AppConfig
from django.conf import settings


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import checks, gateway, owner_account, webhooks  # noqa: F401  (receivers, checks)
        from billing.auto_topup import auto_topup_run, auto_topups_sweep
        from subscriptions.services import after_spend_register, upkeep_step_register

        # Whichever runs the upkeep (the scheduler, or cron on a machine without one), and at
        # once after a spend.
        upkeep_step_register("auto_topups", auto_topups_sweep)
        after_spend_register(auto_topup_run)

        # dj-stripe's owner-account lookups, once per delivery (billing/owner_account.py).
        owner_account.install()

        # Bounded timeouts and retries from the first SDK call, dj-stripe's included.
        gateway.sdk_configure()

        if getattr(settings, "STRIPE_FOLLOW_EMULATOR_CLOCK", False):
            from billing import devclock

            devclock.install()

"""The "support" group: view users, accounts, the ledger and Stripe deliveries, adjust
credits and resync; no deleting users, no Stripe API keys (no permission on djstripe.APIKey).

Permissions are normally created after migrations (post_migrate); they are created here
first so a fresh database gets a complete group in one ``migrate``.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "support"
PERMISSIONS = [
    ("auth", "view_user"),
    ("subscriptions", "view_creditaccount"),
    ("subscriptions", "view_credithold"),
    ("subscriptions", "view_componentunlock"),
    ("activities", "view_ledgerentry"),
    ("activities", "view_activity"),
    ("djstripe", "view_webhookeventtrigger"),
    ("djstripe", "view_event"),
    ("djstripe", "view_customer"),
    ("djstripe", "view_subscription"),
    ("djstripe", "view_invoice"),
    ("djstripe", "view_session"),
    ("subscriptions", "adjust_credits"),
    ("subscriptions", "resync_billing"),
]


def create_group(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0002_supportaccount"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("activities", "0001_initial"),
        ("djstripe", "0003_2_11"),  # our squash replaces it (billing/djstripe_migrations)
    ]

    operations = [migrations.RunPython(create_group, remove_group)]

"""At most one open unlock (its expiry not yet recorded) per user and component.

The active unlock is always the open one, so this unique partial index is what "already
unlocked" means to the database: two racing unlocks cannot both insert, and looking up the
active one is an index probe. Older open rows (an unlock that expired and was re-bought before
the sweep recorded its expiry) are marked recorded first, keeping each pair's newest.
"""

from django.db import migrations, models
from django.db.models import Q


def close_older_open_unlocks(apps, schema_editor):
    ComponentUnlock = apps.get_model("subscriptions", "ComponentUnlock")
    newest = {}
    for unlock in ComponentUnlock.objects.filter(expiry_recorded=False).order_by("expires_at", "pk"):
        key = (unlock.user_id, unlock.component)
        if key in newest:
            ComponentUnlock.objects.filter(pk=newest[key]).update(expiry_recorded=True)
        newest[key] = unlock.pk


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0004_tokens_and_google")]

    operations = [
        migrations.RunPython(close_older_open_unlocks, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="componentunlock",
            constraint=models.UniqueConstraint(
                fields=("user", "component"),
                condition=Q(expiry_recorded=False),
                name="unlock_one_open_per_component",
            ),
        ),
    ]

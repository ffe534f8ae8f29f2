"""A migration that creates many interlinked tables at once: ``TablesAtOnceMigration``.

Django applies a migration one operation at a time, and after each one it renders the new
model again together with every model related to it, recursively. For dj-stripe's schema
(billing/djstripe_migrations: 59 models, most of them pointing at each other) that was 2,293
model renders (hrvstr/tests/test_schema.py counts them), 4.25 s of the 9.3 s an empty SQLite
database took to migrate (2026-12-03), on every fresh database: ``make run``'s first start,
each test run's databases, a new deployment.

This applies every operation's state first, renders the models once, then creates each table
from the migration's final models in the operations' order: the same tables, columns, indexes
and constraints as Django's own path. A field that a later ``AddField`` gives a table created
here is created with the table instead of added to it; foreign keys are created as for any
new table (at the end of the migration on PostgreSQL, inline on SQLite), so a table may point
at one created after it. Anything else (another operation, ``sqlmigrate``, a database without
transactional DDL, a migration run backwards) takes Django's path unchanged.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.db.migrations.operations import AddField, CreateModel
from django.db.migrations.state import ProjectState


class TablesAtOnceMigration(migrations.Migration):
    def apply(
        self, project_state: ProjectState, schema_editor: Any, collect_sql: bool = False
    ) -> ProjectState:
        if collect_sql or not schema_editor.atomic_migration or not self._creates_tables_only():
            return super().apply(project_state, schema_editor, collect_sql)
        # Without rendered models in the state, an operation's state change renders nothing.
        project_state.__dict__.pop("apps", None)
        for operation in self.operations:
            operation.state_forwards(self.app_label, project_state)
        apps = project_state.apps  # rendered once, as the migration leaves them
        alias = schema_editor.connection.alias
        for operation in self.operations:
            if isinstance(operation, CreateModel):
                model = apps.get_model(self.app_label, operation.name)
                if operation.allow_migrate_model(alias, model):
                    schema_editor.create_model(model)
        return project_state

    def _creates_tables_only(self) -> bool:
        """Only new tables, and fields given to the tables this migration creates."""
        created = {op.name_lower for op in self.operations if isinstance(op, CreateModel)}
        return all(
            isinstance(op, CreateModel)
            or (isinstance(op, AddField) and op.model_name_lower in created)
            for op in self.operations
        )

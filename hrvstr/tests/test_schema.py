"""hrvstr.schema.TablesAtOnceMigration: dj-stripe's tables as Django's own path makes them,
with its models rendered once instead of thousands of times.

Each case migrates an empty SQLite database of its own up to the squashed dj-stripe migration
(on PostgreSQL the two paths were compared with pg_dump --schema-only: identical, see the
commit; billing/djstripe_migrations/check_squash.sh compares the columns with upstream's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.apps.registry import Apps
from django.db import migrations
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ModelState
from django.db.models import Model
from django.db.utils import ConnectionHandler

from hrvstr.schema import TablesAtOnceMigration

DJSTRIPE = ("djstripe", "0001_squashed_0003_2_11")


def migrated(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple], int]:
    """dj-stripe's tables, indexes and their SQL in a new SQLite database at ``path``, and how
    many model renders it took."""
    renders = 0
    render = ModelState.render

    def counted(self: ModelState, apps: Apps) -> type[Model]:
        nonlocal renders
        renders += 1
        return render(self, apps)

    monkeypatch.setattr(ModelState, "render", counted)
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    connection = ConnectionHandler({"default": sqlite})["default"]
    try:
        executor = MigrationExecutor(connection)
        assert isinstance(executor.loader.graph.nodes[DJSTRIPE], TablesAtOnceMigration)
        executor.migrate([DJSTRIPE])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                " WHERE tbl_name LIKE 'djstripe%' ORDER BY type, name"
            )
            schema = cursor.fetchall()
    finally:
        connection.close()
        monkeypatch.setattr(ModelState, "render", render)
    return schema, renders


@pytest.mark.django_db
def test_dj_stripe_tables_are_created_as_django_creates_them_with_one_render(tmp_path, monkeypatch):
    ours, our_renders = migrated(tmp_path / "ours.sqlite3", monkeypatch)
    with monkeypatch.context() as django_path:
        django_path.setattr(TablesAtOnceMigration, "apply", migrations.Migration.apply)
        djangos, django_renders = migrated(tmp_path / "django.sqlite3", django_path)
    assert len([row for row in ours if row[0] == "table"]) > 60
    assert ours == djangos
    # Each of dj-stripe's 59 models once, and the few of the auth and contenttypes migrations
    # before it (74 on 2026-12-03); Django's path rendered them 2,293 times.
    assert our_renders < 100 < 1_000 < django_renders

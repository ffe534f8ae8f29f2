"""Database statements the ORM has no single call for."""

from __future__ import annotations

from typing import Any, cast

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper


def insert_unless_present(instance: models.Model) -> bool:
    """INSERT an unsaved ``instance`` unless a row with one of its unique values exists.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (PostgreSQL; SQLite 3.35+) instead of
    ``get_or_create`` inside ``atomic()``: that is a SELECT and an INSERT with two savepoints
    around them, six round trips where this is one, and a webhook sends such "once" rows on
    every delivery. True when the row was inserted (the instance then has its primary key).
    """
    meta = instance._meta
    using = router.db_for_write(type(instance))
    connection = connections[using]
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    values = [
        field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields
    ]
    quote = connection.ops.quote_name
    if meta.pk is None:
        raise TypeError(f"{meta.label} has no primary key")
    # A concrete field always has a column (django-stubs type it optional for the others).
    columns = ", ".join(quote(cast(str, field.column)) for field in fields)
    primary_key = quote(cast(str, meta.pk.column))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING RETURNING {primary_key}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = using
    return True


def prepared_cursor(connection: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor for a statement run on every request or delivery: on PostgreSQL it binds its
    parameters server-side, so psycopg prepares the statement once a connection has run it
    ``prepare_threshold`` times (settings.py) and PostgreSQL stops parsing and planning it
    each time. Django's own cursors bind client-side and are never prepared. Wrapped as Django
    wraps its cursors, so query logging and ``execute_wrapper`` see it; elsewhere, Django's
    cursor.

    The statement's parameters must have types PostgreSQL can infer server-side (a str is
    sent untyped, an int as the smallest integer type holding it).
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        # django-stubs describe this class and the wrappers' arguments as psycopg2's.
        cursor: Any = ServerBindingCursor(connection.connection)  # type: ignore[call-arg]
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)

"""Statements of the hot paths (an order's import and reservation) written as SQL.

The ORM's query compiler spends a few hundred microseconds on each query, more than
PostgreSQL spends running a small one, and an order's import runs about ten. These few
statements are written once instead: on PostgreSQL bound on the server and prepared once
per connection (when ``DATABASE_PREPARED_STATEMENTS`` allows), through Django's cursor on
other databases, so they must be plain SQL both understand. Rows read back become model
instances converted as the ORM would convert them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model


def sql_rows(sql: str, params: Sequence = (), *, prepare: bool = True) -> list[tuple]:
    """Run ``sql`` (``%s`` placeholders) on the default database; the rows it returns.

    On PostgreSQL a parameter's type is the one its value gives it (an ``int`` is sent as
    the smallest integer type that holds it): where the statement cannot infer the type
    from a column, cast the placeholder (``%s::bigint``). ``prepare=False`` for a query
    that searches a table which grows fast (orders): a prepared statement keeps the plan
    it was given, and one made while the table was nearly empty (a scan) would stay.
    """
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchall() if cursor.description else []


@cache
def sql_name(model: type[Model], field: str = "") -> str:
    """``model``'s table, or its ``field``'s column, quoted."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return quote(model._meta.get_field(field).column if field else model._meta.db_table)


def sql_columns(model: type[Model], alias: str) -> str:
    """``alias``'s columns of ``model``, in the order ``model_from_row`` reads them."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def model_from_row(model: type[Model], values: Sequence) -> Model:
    """The instance of ``model`` loaded from ``values`` (a row's ``sql_columns``), each
    converted as the ORM converts it (a time read from SQLite, a time zone's name)."""
    db = connections[DEFAULT_DB_ALIAS]
    converted = list(values)
    for index, expression, converters in _converters(model, db.vendor):
        value = converted[index]
        for converter in converters:
            value = converter(value, expression, db)
        converted[index] = value
    return model.from_db(db.alias, None, converted)


@cache
def _converters(model: type[Model], vendor: str) -> list[tuple]:
    db = connections[DEFAULT_DB_ALIAS]
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        expression = field.get_col(model._meta.db_table)
        converters = db.ops.get_db_converters(expression) + field.get_db_converters(db)
        if converters:
            found.append((index, expression, converters))
    return found


def sql_in(column: str, values: Sequence, db_type: str) -> tuple[str, list]:
    """A condition that ``column`` (already quoted) is one of ``values``, and its
    parameters: on PostgreSQL one array of ``db_type`` (so one prepared statement serves any
    number of values), elsewhere a placeholder each; a single value is compared as it is."""
    if len(values) == 1:  # the plan that suits one value best, whatever the statistics
        return f"{column} = %s", list(values)
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return f"{column} = ANY(%s::{db_type}[])", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)

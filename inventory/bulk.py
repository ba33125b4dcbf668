"""Writing many rows at once (the base layer's helper, for every app): a channel's page of
orders is stored with it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Model

from .sql import sql_rows

M = TypeVar("M", bound=Model)

# Fewer rows go in by one INSERT: COPY needs a statement more (the ids).
COPY_MIN_ROWS = 10
# On PostgreSQL these fields store their value as it is when it has one of these types: no
# field code needs to run for it. Exact classes only (a subclass may convert); datetimes
# only aware ones.
_PLAIN = (str, int, bool, type(None))
_AS_IS = {
    **dict.fromkeys(
        (
            models.CharField,
            models.TextField,
            models.EmailField,
            models.SlugField,
            models.IntegerField,
            models.SmallIntegerField,
            models.BigIntegerField,
            models.PositiveIntegerField,
            models.PositiveSmallIntegerField,
            models.PositiveBigIntegerField,
            models.BooleanField,
            models.ForeignKey,
        ),
        _PLAIN,
    ),
    models.DecimalField: (Decimal, type(None)),
    models.DateTimeField: (datetime, type(None)),
}


_pauses = 0
_pauses_lock = threading.Lock()
_collector_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for the block (process-wide; nested and concurrent
    blocks keep it paused until the last one ends).

    Storing a page of orders makes tens of thousands of short-lived objects (rows, model
    instances) that reference counting frees; they set the collector off again and again,
    and each pass walks every object the process holds: a quarter of an import's time.
    """
    global _pauses, _collector_was_enabled
    with _pauses_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_enabled:
                gc.enable()


def model_instance(model: type[M], **values) -> M:
    """An unsaved ``model`` built as the ORM builds the rows it reads, by position: half the
    cost of ``model(**values)`` or less, which tells for a page's thousands of rows.

    ``values`` are by attribute name (``order_id``) or, for a foreign key, by field name with
    the related instance (``order``), which is kept as the loaded relation; every other field
    takes its default. An unknown name raises ``KeyError``.
    """
    positions, relations, defaults, makers = _instance_shape(model)
    row = list(defaults)
    for index, make in makers:
        row[index] = make()
    related = []
    for name, value in values.items():
        index = positions.get(name)
        if index is None:
            field, index = relations[name]
            related.append((field, value))
            value = None if value is None else value.pk
        row[index] = value
    obj = model(*row)
    for field, value in related:
        field.set_cached_value(obj, value)
    return obj


@cache
def _instance_shape(model: type[Model]) -> tuple[dict, dict, list, list]:
    """For ``model_instance``: the position of each attribute name, each foreign key by
    name with its position, the constant defaults and the defaults made anew per row."""
    fields = model._meta.concrete_fields
    positions = {field.attname: index for index, field in enumerate(fields)}
    relations = {
        field.name: (field, index) for index, field in enumerate(fields) if field.is_relation
    }
    defaults, makers = [], []
    for index, field in enumerate(fields):
        if field.has_default() and callable(field.default):
            makers.append((index, field.default))
            defaults.append(None)
        else:
            defaults.append(field.get_default())
    return positions, relations, defaults, makers


def rows_insert(model: type[Model], objs: list[Model]) -> list[Model]:
    """Insert ``objs`` (unsaved instances of ``model``) and set their primary keys, as
    ``bulk_create`` does (no signals, no ``save()``).

    On PostgreSQL the rows go through ``COPY``, their ids drawn from the table's sequence
    first: for a page of orders with their JSON payloads that costs about a quarter of the
    ``INSERT`` ``bulk_create`` sends. A few rows go by one prepared ``INSERT`` (an order
    with its lines), which spares the ORM's compiler. Other databases use ``bulk_create``.
    """
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy
    if db.vendor != "postgresql" or not objs:
        return model.objects.bulk_create(objs)
    columns = _columns(model)
    if len(objs) < COPY_MIN_ROWS:
        ids = sql_rows(
            _insert_sql(model, len(objs)),
            [value for obj in objs for value in _db_values(columns, obj, db)],
        )
        return _saved(objs, [pk for (pk,) in ids], db)
    meta = model._meta
    quote = db.ops.quote_name
    names = ", ".join(quote(c) for c in [meta.pk.column, *(f.column for f, *_ in columns)])
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [quote(meta.db_table), meta.pk.column, len(objs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        with (
            db.wrap_database_errors,
            cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({names}) FROM STDIN") as copy,
        ):
            for pk, obj in zip(ids, objs, strict=True):
                copy.write_row([pk, *_db_values(columns, obj, db)])
    return _saved(objs, ids, db)


def _saved(objs: list[Model], ids: list[int], db) -> list[Model]:
    for pk, obj in zip(ids, objs, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, db.alias
    return objs


@cache
def _insert_sql(model: type[Model], rows: int) -> str:
    """``INSERT`` of ``rows`` rows of ``model`` (the columns ``_columns`` names), returning
    their ids in order. The columns give the placeholders their types."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    columns = _columns(model)
    row = f"({', '.join(['%s'] * len(columns))})"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(field.column) for field, *_ in columns)}) "
        f"VALUES {', '.join([row] * rows)} RETURNING {quote(model._meta.pk.column)}"
    )


@cache
def _columns(model: type[Model]) -> list[tuple]:
    """Per column but the key: the field, its attribute, the types it stores as they are,
    and whether it stamps its own value (the time) when saved."""
    return [
        (
            field,
            field.attname,
            _AS_IS.get(type(field), ()),
            getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False),
        )
        for field in model._meta.concrete_fields
        if not field.primary_key
    ]


def _db_values(columns: list[tuple], obj: Model, db) -> list:
    """The row ``obj`` is stored as, as ``bulk_create`` would prepare it."""
    row = []
    for field, attname, as_is, stamps in columns:
        value = field.pre_save(obj, True) if stamps else getattr(obj, attname)
        if type(value) in as_is and getattr(value, "tzinfo", True):
            row.append(value)  # a plain value, or an aware datetime
        elif type(value) is JsonDocument:
            row.append(value.text)  # PostgreSQL reads a JSON column from its text
        else:
            row.append(field.get_db_prep_save(value, db))
    return row


class JsonDocument(dict):
    """A JSON object that keeps the text it was serialized to (for its digest, say), so
    ``rows_insert`` sends that text instead of serializing the object again: a channel's
    order payload is kilobytes. Elsewhere it is the plain ``dict`` it holds. Not to be
    changed once made: the text would no longer be what it holds."""

    __slots__ = ("text",)

    def __init__(self, value: dict, text: str):
        super().__init__(value)
        self.text = text

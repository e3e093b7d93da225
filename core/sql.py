"""Hot-path SQL: querysets compiled once, and single-row inserts without the ORM's compiler.

On SQLite, compiling a queryset costs more than running it (figures in docs/performance.md). The
queries that run on every run start and every step are written as ordinary querysets, compiled
once per process, and then executed again with new parameters; results go through the fields'
own converters.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import Model, QuerySet

from core.internals.django_state import mark_saved

T = TypeVar("T")


def execute(connection: Any, sql: str, params: list[Any], read: Callable[[Any], T]) -> T:
    """Run one statement and return `read(cursor)` (its rows, rowcount or lastrowid).

    On SQLite, when nothing records queries (DEBUG, CaptureQueriesContext, execute wrappers),
    straight on the driver's connection with the SQL's placeholders converted once, skipping
    Django's cursor wrappers and its `%s` -> `?` rewrite of every query (docs/performance.md).
    Errors are still Django's (IntegrityError and the rest), and a broken transaction refuses.
    """
    if connection.vendor != "sqlite" or connection.queries_logged or connection.execute_wrappers:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    connection.validate_no_broken_transaction()
    connection.ensure_connection()
    qmark = _qmark.get(sql)
    if qmark is None:
        qmark = _qmark[sql] = FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")
    with connection.wrap_database_errors:
        cursor = connection.connection.execute(qmark, params)
        try:
            return read(cursor)
        finally:
            cursor.close()


_qmark: dict[str, str] = {}

# Placeholder arguments: odd integers that no constant of ours is, inside every integer field's
# range (Django drops a lookup whose value lies outside it, e.g. a negative index).
_SENTINEL_BASE = 2_147_000_113


class CompiledValues:
    """A `.values()` queryset compiled once; `rows(*args)` runs its SQL with other arguments.

    `build` is called once with placeholder integers in place of the arguments (a list argument
    becomes a list of placeholders of the same length) and returns the queryset. Each
    placeholder found among the compiled parameters is replaced by the real value at run time.
    The SQL is compiled again for each new length of a list argument.
    """

    def __init__(self, build: Callable[..., QuerySet[Any]]) -> None:
        self.build = build
        self._compiled: dict[tuple[Any, ...], tuple[str, list[Any], list[int | None], list[str], list[Any]]] = {}
        # Converters are bound to a connection: kept per connection (weakly), as long as it lives.
        self._converters: weakref.WeakKeyDictionary[Any, list[tuple[int, list[Any], Any]]] = weakref.WeakKeyDictionary()

    def _compile(self, connection: Any, shape: tuple[int, ...]) -> tuple[str, list[Any], list[int | None], list[str], list[Any]]:
        placeholders: list[Any] = []
        flat = 0
        for length in shape:
            if length < 0:
                placeholders.append(_SENTINEL_BASE + flat)
                flat += 1
            else:
                placeholders.append([_SENTINEL_BASE + flat + i for i in range(length)])
                flat += length
        queryset = self.build(*placeholders)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        names = [*queryset.query.extra_select, *queryset.query.values_select, *queryset.query.annotation_select]
        expressions = [column[0] for column in compiler.select]
        if len(names) != len(expressions):
            raise TypeError("CompiledValues needs a .values() queryset with named fields")
        # For each parameter: the index of the argument it stands for, or None for a constant.
        # (A text field's lookup turns its placeholder into a string.)
        where = {value: i for i in range(flat) for value in (_SENTINEL_BASE + i, str(_SENTINEL_BASE + i))}
        slots = [where.get(param) if isinstance(param, int | str) and not isinstance(param, bool) else None
                 for param in params]
        found = sorted(slot for slot in slots if slot is not None)
        if found != list(range(flat)):
            raise TypeError("every argument of a CompiledValues query must appear once among its parameters")
        compiled = (sql, list(params), slots, names, expressions)
        self._compiled[(connection.vendor, *shape)] = compiled
        return compiled

    def rows(self, *args: Any, using: str = DEFAULT_DB_ALIAS) -> list[dict[str, Any]]:
        connection = connections[using]
        shape = tuple(len(arg) if isinstance(arg, list | tuple) else -1 for arg in args)
        compiled = self._compiled.get((connection.vendor, *shape)) or self._compile(connection, shape)
        sql, constants, slots, names, expressions = compiled
        flat: list[Any] = []
        for arg in args:
            if isinstance(arg, list | tuple):
                flat.extend(arg)
            else:
                flat.append(arg)
        params = [constants[i] if slot is None else flat[slot] for i, slot in enumerate(slots)]
        rows = execute(connection, sql, params, lambda cursor: cursor.fetchall())
        converters = self._converters.get(connection)
        if converters is None:
            found = [(i, connection.ops.get_db_converters(e) + e.get_db_converters(connection), e)
                     for i, e in enumerate(expressions)]
            converters = self._converters[connection] = [(i, convert, e) for i, convert, e in found if convert]
        result = []
        for row in rows:
            values = list(row)
            for i, found, expression in converters:
                for convert in found:
                    values[i] = convert(values[i], expression, connection)
            result.append(dict(zip(names, values, strict=True)))
        return result


_insert_sql: dict[tuple[type[Model], str], tuple[str, list[tuple[Any, type | None, bool]], bool]] = {}

# Django's fields that hand a value of exactly this type to either database unchanged (their
# get_db_prep_save is int(), str() or bool() of it). Other classes, and other types, go through the field.
_AS_IS: dict[type, type] = {
    **dict.fromkeys((models.AutoField, models.BigAutoField, models.IntegerField, models.BigIntegerField,
                     models.SmallIntegerField, models.PositiveIntegerField, models.PositiveBigIntegerField,
                     models.PositiveSmallIntegerField), int),
    models.CharField: str, models.TextField: str, models.BooleanField: bool,
}


def _as_is(field: Any, connection: Any) -> tuple[type | None, bool]:
    """(the type whose values `field` stores as they are, or None; whether it stores None as NULL),
    a key's as its target field's."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    return _AS_IS.get(type(target)), field.get_db_prep_save(None, connection) is None


def insert_instance(instance: Model, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """INSERT a new model instance with one prepared statement; sets its primary key.

    What `Model.save()` does for a plain insert (field defaults, auto_now_add, the fields' own
    value preparation), without compiling the query each time. No signals are sent: nothing in
    this project listens to them.
    """
    connection = connections[using]
    model = type(instance)
    key = (model, connection.vendor)
    if key not in _insert_sql:
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        returning = connection.features.can_return_columns_from_insert
        sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        if returning:
            sql += f" RETURNING {quote(model._meta.pk.column)}"
        _insert_sql[key] = (sql, [(f, *_as_is(f, connection)) for f in fields], returning)
    sql, prepared, returning = _insert_sql[key]
    # A None its field stores as NULL, or an int, str or bool in a field that stores it as it is, needs
    # no preparing; the rest are prepared by their field, as save() does (tests/core/test_sql.py).
    params = []
    for f, plain, none_is_null in prepared:
        value = f.pre_save(instance, True)
        as_is = (none_is_null and value is None) or type(value) is plain
        params.append(value if as_is else f.get_db_prep_save(value, connection))
    instance.pk = execute(connection, sql, params,
                          (lambda cursor: cursor.fetchone()[0]) if returning else (lambda cursor: cursor.lastrowid))
    mark_saved(instance, using)


def insert_copies(template: Model, varying: dict[str, list[Any]], *, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """INSERT rows that are the unsaved `template` but for the `varying` fields (by attribute name, a
    list of values each, one row per value); returns their primary keys in order.

    The experiment driver starts a hundred runs at a time that differ only in their inputs: every
    other value is prepared once, by its field, instead of a model instance and the compiler's work
    per row (`bulk_create`, its plain-ORM equivalent: tests/core/test_sql.py compares the rows both
    leave). One multi-row INSERT ... RETURNING (SQLite 3.35+, PostgreSQL), whose rows come back in
    the order of the VALUES, as bulk_create relies on too.
    """
    count = len(next(iter(varying.values()), []))
    if count == 0:
        return []
    connection = connections[using]
    fields = [f for f in type(template)._meta.concrete_fields if not f.primary_key]
    by_name = {f.attname: index for index, f in enumerate(fields)}
    base = [f.get_db_prep_save(f.pre_save(template, True), connection) for f in fields]
    columns = {by_name[name]: [fields[by_name[name]].get_db_prep_save(value, connection) for value in values]
               for name, values in varying.items()}
    params: list[Any] = []
    for row in range(count):
        params.extend(columns[index][row] if index in columns else value for index, value in enumerate(base))
    quote = connection.ops.quote_name
    values_sql = f"({', '.join(['%s'] * len(fields))})"
    sql = (f"INSERT INTO {quote(type(template)._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES {', '.join([values_sql] * count)} RETURNING {quote(type(template)._meta.pk.column)}")
    return execute(connection, sql, params, lambda cursor: [r[0] for r in cursor.fetchall()])


_update_sql: dict[tuple[Any, ...], tuple[str, list[Any], list[Any]]] = {}


def update_rows(model: type[Model], *, where: dict[str, Any], values: dict[str, Any],
                increments: dict[str, int] | None = None, using: str = DEFAULT_DB_ALIAS) -> int:
    """`UPDATE ... SET values, field = field + n ... WHERE every field = value`; returns the row count.

    Its plain-ORM equivalent: `model.objects.filter(**where).update(**values, field=F(field) + n)`
    (tests/core/test_sql.py compares the rows both leave).

    The compare-and-set of the step ledger, as one prepared statement: fields' own value
    preparation, no queryset compiled per call. `where` and `values` are keyed by attribute
    name (`run_id`, not `run`); a `where` value of None matches NULL.
    """
    connection = connections[using]
    increments = increments or {}
    key = (model, connection.vendor, tuple(values), tuple(increments), tuple((k, where[k] is None) for k in where))
    if key not in _update_sql:
        by_name = {f.attname: f for f in model._meta.concrete_fields}
        quote = connection.ops.quote_name
        assignments = [f"{quote(by_name[name].column)} = %s" for name in values]
        assignments += [f"{quote(by_name[name].column)} = {quote(by_name[name].column)} + %s" for name in increments]
        conditions = [f"{quote(by_name[name].column)} IS NULL" if value is None else f"{quote(by_name[name].column)} = %s"
                      for name, value in where.items()]
        sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
        _update_sql[key] = (sql, [by_name[name] for name in values],
                            [by_name[name] for name, value in where.items() if value is not None])
    sql, set_fields, where_fields = _update_sql[key]
    params = [f.get_db_prep_save(values[f.attname], connection) for f in set_fields]
    params += increments.values()
    params += [f.get_db_prep_value(where[f.attname], connection, prepared=False) for f in where_fields]
    return execute(connection, sql, params, lambda cursor: cursor.rowcount)


def instances(model: type[Model], rows: list[dict[str, Any]], *, using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """Model instances from CompiledValues rows of all the model's concrete fields (Model.from_db)."""
    if not rows:
        return []
    names = list(rows[0])
    return [model.from_db(using, names, [row[name] for name in names]) for row in rows]


def concrete_attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]

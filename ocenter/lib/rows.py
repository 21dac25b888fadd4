"""
Writes to several tables in one round trip: on PostgreSQL as one statement
(each part a data-modifying ``WITH``), elsewhere a statement a part, in order,
in one transaction.

The hot paths (a request placed, a claim run, a release) write three or four
tables at once, a row or two each; Django takes a round trip a table and
compiles the SQL of each on every call. The SQL here is built from the
models' own fields (their database types, ``pre_save`` and
``get_db_prep_save``), so a column added to a model is written here too.

A compare-and-set leads most of these writes (``guarded``): the first part
changes a row only if it is still as the caller read it ("another process got
there first" otherwise), and the other parts are written only if it did.
"""

from __future__ import annotations

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import AutoField, F, Model, QuerySet, sql


@cache
def _columns(model) -> tuple:
    """The fields an INSERT names (the database numbers auto fields), with their column names and PostgreSQL casts."""
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField)]
    return tuple((f, connection.ops.quote_name(f.column), f.cast_db_type(connection)) for f in fields)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def insert_sql(rows: list[Model], *, when: str = "", take: dict | None = None) -> tuple[str, list]:
    """The INSERT of ``rows`` (new instances of one model) as ``(sql, params)``; ``pre_save`` runs on each, as Django's save does.

    PostgreSQL, for ``together``: ``when`` is a condition the rows are written
    under (``EXISTS (SELECT 1 FROM taken)``), and ``take`` gives columns as SQL
    expressions (``{"accelerator_id": "(SELECT id FROM taken)"}``), so a row can
    name what an earlier part of the statement chose.
    """
    model, take = type(rows[0]), take or {}
    columns = _columns(model)
    params, values = [], []
    for row in rows:
        cells = []
        for field, _, cast in columns:
            value = field.pre_save(row, add=True)
            if field.attname not in take:
                params.append(field.get_db_prep_save(value, connection))
                cells.append(f"%s::{cast}")
        values.append(f"({', '.join(cells)})")
    names = ", ".join(quoted for field, quoted, _ in columns if field.attname not in take)
    chosen = ", ".join(take.get(field.attname, f"v.{quoted}") for field, quoted, _ in columns)
    return (
        f"INSERT INTO {_table(model)} ({', '.join(q for _, q, _ in columns)}) "
        f"SELECT {chosen} FROM (VALUES {', '.join(values)}) AS v ({names}){f' WHERE {when}' if when else ''}",
        params,
    )


def update_sql(queryset: QuerySet, values: dict) -> tuple[str, list]:
    """``queryset.update(**values)`` as ``(sql, params)``, returning the primary keys of the rows it changes (PostgreSQL)."""
    query = queryset.query.chain(sql.UpdateQuery)
    query.add_update_values(values)
    text, params = query.get_compiler(connection=connection).as_sql()
    return f"{text} RETURNING {_table(queryset.model)}.{connection.ops.quote_name(queryset.model._meta.pk.column)}", list(params)


def set_sql(rows: list[Model], fields: list[str], *, when: str = "") -> tuple[str, list]:
    """UPDATE each of ``rows`` (saved instances of one model) to its own values of ``fields``, as ``(sql, params)`` (PostgreSQL)."""
    model = type(rows[0])
    pk = model._meta.pk
    chosen = [pk, *(model._meta.get_field(name) for name in fields)]
    params, values = [], []
    for row in rows:
        values.append(f"({', '.join(f'%s::{f.cast_db_type(connection)}' for f in chosen)})")
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in chosen]
    table, key = _table(model), connection.ops.quote_name(pk.column)
    columns = [connection.ops.quote_name(f.column) for f in chosen]
    assignments = ", ".join(f"{c} = v.{c}" for c in columns[1:])
    return (
        f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join(values)}) AS v ({', '.join(columns)})"
        f" WHERE {table}.{key} = v.{key}{f' AND {when}' if when else ''}",
        params,
    )


def add_sql(model, deltas: dict, *, when: str = "") -> tuple[str, list]:
    """Add to counters: ``deltas`` is ``{pk: {field: amount}}``, every row with the same fields, as ``(sql, params)`` (PostgreSQL)."""
    names = list(next(iter(deltas.values())))
    columns = [connection.ops.quote_name(model._meta.get_field(n).column) for n in names]
    pk = model._meta.pk
    table, key = _table(model), connection.ops.quote_name(pk.column)
    cast = pk.cast_db_type(connection)
    values = ", ".join(f"(%s::{cast}{', %s::integer' * len(names)})" for _ in deltas)
    params = [p for row, amounts in deltas.items() for p in (row, *(amounts[n] for n in names))]
    assignments = ", ".join(f"{c} = {table}.{c} + v.{c}" for c in columns)
    return (
        f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v ({key}, {', '.join(columns)})"
        f" WHERE {table}.{key} = v.{key}{f' AND {when}' if when else ''}",
        params,
    )


def together(name: str, first: tuple[str, list], *then: tuple[str, list]) -> list[tuple]:
    """PostgreSQL: ``first`` (a data-modifying statement with RETURNING, called ``name`` in the statement) and every
    statement of ``then`` as one statement; returns ``first``'s rows.

    The statements of ``then`` see ``name``'s rows (``EXISTS (SELECT 1 FROM taken)``),
    not its effects: every part reads the same snapshot.
    """
    sql_text, params = first
    parts = [f"{name} AS ({sql_text})"]
    for i, (part, part_params) in enumerate(then):
        parts.append(f"then_{i} AS ({part})")
        params = [*params, *part_params]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT * FROM {name}", params)
        return cursor.fetchall()


GUARD = "EXISTS (SELECT 1 FROM guard)"


def guarded(guard: QuerySet, values: dict, *, rows=(), sets=(), adds=None) -> bool:
    """Update the rows of ``guard`` to ``values``; only if that changed a row, also insert ``rows``, set ``sets``
    (``[(rows, fields)]``) and add ``adds`` (``(model, {pk: {field: amount}})``). Returns whether it did.

    ``guard`` filters on what the caller read (``state=…``): a row another
    process moved on meanwhile is not changed, and nothing else is written.
    One statement on PostgreSQL; elsewhere one transaction.
    """
    groups = by_model(rows)
    if connection.vendor == "postgresql":
        then = [insert_sql(group, when=GUARD) for group in groups]
        then += [set_sql(objs, fields, when=GUARD) for objs, fields in sets if objs]
        if adds and adds[1]:
            then.append(add_sql(*adds, when=GUARD))
        did = bool(together("guard", update_sql(guard, values), *then))
        if did:
            saved(rows)
        return did
    with transaction.atomic():
        if not guard.update(**values):
            return False
        for group in groups:
            type(group[0]).objects.bulk_create(group)
        for objs, fields in sets:
            if objs:
                type(objs[0]).objects.bulk_update(objs, fields)
        if adds:
            model, deltas = adds
            for pk, amounts in deltas.items():
                model.objects.filter(pk=pk).update(**{name: F(name) + amount for name, amount in amounts.items()})
    return True


def insert_all(rows):
    """Write these new rows (of any models): one statement on PostgreSQL, a ``bulk_create`` a model elsewhere."""
    groups = by_model(rows)
    if not groups:
        return
    if connection.vendor != "postgresql":
        for group in groups:
            type(group[0]).objects.bulk_create(group)
        return
    parts, params = [], []
    for i, group in enumerate(groups):
        text, group_params = insert_sql(group)
        parts.append(f"rows_{i} AS ({text})")
        params += group_params
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT 1", params)


def saved(rows):
    """Mark these instances as stored, as Django's own save does once its INSERT is done."""
    for row in rows:
        row._state.adding, row._state.db = False, DEFAULT_DB_ALIAS


def by_model(rows) -> list[list[Model]]:
    """``rows`` grouped by model, in the order each model first appears."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(type(row), []).append(row)
    return list(groups.values())


# --- reads, written once --------------------------------------------------------
#
# The hot paths' few reads are SQL written out, not querysets compiled on every call (compiling one costs more
# than running it here). Rows come back as model instances as the ORM makes them: the backend's and the fields'
# converters applied, related rows attached as select_related attaches them.


def columns(model, alias: str, prefix: str = "") -> str:
    """The select list of every concrete field of ``model`` in table ``alias``, each named ``prefix`` + its attname."""
    return ", ".join(f'{alias}.{connection.ops.quote_name(f.column)} AS "{prefix}{f.attname}"' for f in model._meta.concrete_fields)


def param(field, value):
    """``value`` as the database takes it for ``field`` (a UUID is its hex on SQLite)."""
    return field.get_db_prep_value(value, connection, prepared=False)


def adapted(moment):
    """A moment as raw SQL takes it (text on SQLite)."""
    return connection.ops.adapt_datetimefield_value(moment)


def fetch(sql: str, params) -> list[dict]:
    """The rows of ``sql`` as dicts by column name."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


@cache
def _converters(model) -> tuple:
    """Per field: its attname, its column expression (a key's is its target's), and the converters the compiler would run."""
    cols = [(f.attname, f.get_col(model._meta.db_table)) for f in model._meta.concrete_fields]
    return tuple((name, col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]) for name, col in cols)


def instance(model, row: dict, prefix: str = "", **related):
    """The ``model`` instance of the columns named ``prefix`` + attname in ``row``, as the ORM would build it;
    ``related``: instances to attach (``tenant=…``), as ``select_related`` does."""
    values = []
    for attname, col, converters in _converters(model):
        value = row[prefix + attname]
        for convert in converters:
            value = convert(value, col, connection)
        values.append(value)
    obj = model.from_db(connection.alias, None, values)
    for name, other in related.items():
        setattr(obj, name, other)
    return obj

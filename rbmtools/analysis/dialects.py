"""The shared SQL (DuckDB's dialect) said in Spark SQL and BigQuery, meaning and all.

sqlglot translates syntax. A few functions keep their name across engines but not their meaning,
so after parsing the DuckDB text this module rewrites those nodes to what DuckDB means, then lets
sqlglot write the target dialect:

- ``ARG_MIN(v, k)`` skips rows where ``v`` or ``k`` is NULL in DuckDB; Spark's ``MIN_BY`` skips
  only NULL ``k``; BigQuery cannot order by a STRUCT, so it becomes an ordered ``ARRAY_AGG``.
- ``HASH`` (only ever a grouping key here) is 64-bit in DuckDB and 32-bit in Spark: Spark gets
  ``XXHASH64``, BigQuery ``FARM_FINGERPRINT`` of the values' JSON text.
- ``GREATEST``/``LEAST`` skip NULLs in DuckDB and Spark but return NULL in BigQuery.
- A decimal literal such as ``1000000.0`` makes DuckDB's arithmetic DOUBLE but Spark's DECIMAL:
  Spark gets DOUBLE literals. BigQuery's difference of two TIMESTAMPs is ``TIMESTAMP_DIFF``.
- ``EPOCH_US(ts)`` (microseconds since the epoch) is ``UNIX_MICROS(ts)`` in both.
- In ``GROUP BY``, a name that is both an input column and a select alias means the input column
  in DuckDB and Spark; BigQuery gets the column qualified with its table.

``transpile(sql, dialect)`` is the one entry point; ``duckdb`` returns the text unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from rbmtools.errors import ValidationError

__all__ = ["DIALECTS", "Macro", "statements", "struct_fields", "transpile", "type_sql"]

#: The dialects the analysis SQL is written for (``duckdb`` is its own).
DIALECTS: tuple[str, ...] = ("duckdb", "spark", "bigquery")

_NULL = exp.Null


def _not_null(node: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=node.copy(), expression=_NULL()))


def _all(conditions: list[exp.Expression]) -> exp.Expression:
    result = conditions[0]
    for condition in conditions[1:]:
        result = exp.And(this=result, expression=condition)
    return result


def _paren(node: exp.Expression) -> exp.Expression:
    return exp.Paren(this=node)


def _bottom_up(
    tree: exp.Expression, rewrite: Callable[[exp.Expression], exp.Expression]
) -> exp.Expression:
    """Apply ``rewrite`` to every node, children before their parent, so a rewritten node
    is built from rewritten parts (``GREATEST(LEAST(...), 0)`` has both rewritten)."""
    for node in reversed(list(tree.walk())):
        new = rewrite(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _is_epoch_us(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).upper() == "EPOCH_US"


def _unix_micros(node: exp.Expression) -> exp.Expression:
    """DuckDB's ``EPOCH_US(ts)``: ``UNIX_MICROS`` in Spark and BigQuery alike."""
    return exp.Anonymous(this="UNIX_MICROS", expressions=[e.copy() for e in node.expressions])


# ------------------------------------------------------------------------------ Spark


def _spark_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArgMin | exp.ArgMax):
        value, key = node.this, node.expression
        if isinstance(key, exp.Struct):
            key = _nulls_last_struct(key)
        guarded = exp.Case(
            ifs=[exp.If(this=_not_null(value), true=key.copy())],
        )
        return node.__class__(this=value.copy(), expression=guarded)
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "HASH":
        return exp.Anonymous(this="XXHASH64", expressions=[e.copy() for e in node.expressions])
    if _is_epoch_us(node):
        return _unix_micros(node)
    if (
        isinstance(node, exp.Literal)
        and not node.is_string
        and _is_decimal(node.this)
        and not isinstance(node.parent, exp.Cast)
    ):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    return node


def _nulls_last_struct(key: exp.Struct) -> exp.Struct:
    """A STRUCT key that orders like DuckDB's (a NULL field after any value; Spark puts NULL
    first): each field is preceded by its own "is NULL" flag."""
    fields: list[exp.Expression] = []
    for index, field in enumerate(key.expressions):
        name = field.name if isinstance(field, exp.PropertyEQ) else f"f{index}"
        value = field.expression if isinstance(field, exp.PropertyEQ) else field
        if not isinstance(value, exp.Literal):
            flag = exp.Is(this=value.copy(), expression=_NULL())
            fields.append(exp.PropertyEQ(this=exp.to_identifier(f"{name}_null"), expression=flag))
        fields.append(exp.PropertyEQ(this=exp.to_identifier(name), expression=value.copy()))
    return exp.Struct(expressions=fields)


def _is_decimal(text: str) -> bool:
    return "." in text or "e" in text.lower()


def _spark(tree: exp.Expression) -> exp.Expression:
    return _bottom_up(tree, _spark_node)


# ------------------------------------------------------------------------------ BigQuery


def _bigquery_arg_min(
    node: exp.ArgMin | exp.ArgMax, condition: exp.Expression | None
) -> exp.Expression:
    """``ARG_MIN(v, k) [FILTER (WHERE c)]`` as the first element of an ordered ARRAY_AGG.

    Rows count when ``c`` holds and neither ``v`` nor ``k`` is NULL (DuckDB's rule); they are
    ordered first whatever the order of IGNORE NULLS and LIMIT, then by each part of ``k``
    (a STRUCT key is compared field by field, NULL fields last, as DuckDB compares structs).
    """
    value, key = node.this, node.expression
    parts = (
        [e.expression if isinstance(e, exp.PropertyEQ) else e for e in key.expressions]
        if isinstance(key, exp.Struct)
        else [key]
    )
    checks = [condition.copy()] if condition is not None else []
    checks.append(_not_null(value))
    if not isinstance(key, exp.Struct):  # a STRUCT literal is never NULL
        checks.append(_not_null(key))
    keep = _all([_paren(c) for c in checks])
    descending = isinstance(node, exp.ArgMax)
    first = exp.If(this=keep.copy(), true=exp.Literal.number(0), false=exp.Literal.number(1))
    # nulls_first as BigQuery's default, so no NULLS clause is written: NULLs are ordered by
    # the explicit "IS NULL" key before each part.
    order = [exp.Ordered(this=first, nulls_first=True)]
    for part in parts:
        if isinstance(part, exp.Literal):
            continue
        null_last = exp.Is(this=part.copy(), expression=_NULL())
        order.append(exp.Ordered(this=null_last, nulls_first=True))
        order.append(exp.Ordered(this=part.copy(), desc=descending, nulls_first=not descending))
    picked = exp.If(this=keep, true=value.copy(), false=_NULL())
    template = sqlglot.parse_one(
        "ARRAY_AGG(__v IGNORE NULLS ORDER BY __o LIMIT 1)[SAFE_OFFSET(0)]", read="bigquery"
    )
    aggregate = template.find(exp.ArrayAgg)
    ordered = aggregate.find(exp.Order)
    ordered.set("expressions", order)
    placeholder = aggregate.find(exp.Column)
    assert placeholder is not None and placeholder.name == "__v"
    placeholder.replace(picked)
    return template


def _coalesce_greatest(node: exp.Greatest | exp.Least) -> exp.Expression:
    """``GREATEST(a, b, c)`` with DuckDB's NULL rule: each argument falls back to the others, so
    the result is NULL only when every argument is NULL."""
    args = [node.this, *node.expressions]
    if len(args) == 1:
        return args[0].copy()
    guarded = []
    for index, arg in enumerate(args):
        others = [a.copy() for i, a in enumerate(args) if i != index]
        guarded.append(exp.Coalesce(this=arg.copy(), expressions=others))
    return node.__class__(this=guarded[0], expressions=guarded[1:])


def _bigquery_node(node: exp.Expression) -> exp.Expression:
    if _is_epoch_us(node):
        return _unix_micros(node)
    if isinstance(node, exp.Filter) and isinstance(node.this, exp.ArgMin | exp.ArgMax):
        return _bigquery_arg_min(node.this, node.expression.this)
    if isinstance(node, exp.ArgMin | exp.ArgMax) and not isinstance(node.parent, exp.Filter):
        return _bigquery_arg_min(node, None)
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "HASH":
        values = exp.Struct(expressions=[e.copy() for e in node.expressions])
        return exp.Anonymous(
            this="FARM_FINGERPRINT",
            expressions=[exp.Anonymous(this="TO_JSON_STRING", expressions=[values])],
        )
    if isinstance(node, exp.Greatest | exp.Least):
        return _coalesce_greatest(node)
    if isinstance(node, exp.DateDiff):
        return exp.TimestampDiff(
            this=node.this.copy(), expression=node.expression.copy(), unit=node.args.get("unit")
        )
    return node


def _qualify_group_by(select: exp.Select) -> None:
    """Qualify GROUP BY names that a select alias shadows (see the module docstring).

    A name counts as an input column when the alias's own expression reads a column of that
    name (``MIN(event_type) AS event_type``); an alias of something else (``... AS bin``) is
    meant as the alias and stays unqualified.
    """
    group = select.args.get("group")
    source = select.args.get("from_") or select.args.get("from")
    if group is None or source is None or select.args.get("joins"):
        return
    table = source.this
    if not isinstance(table, exp.Table):
        return
    shadowing = set()
    for projection in select.expressions:
        if not isinstance(projection, exp.Alias):
            continue
        target = projection.this
        if isinstance(target, exp.Column) and target.name == projection.alias:
            continue
        if any(c.name == projection.alias for c in target.find_all(exp.Column)):
            shadowing.add(projection.alias)
    for column in list(group.find_all(exp.Column)):
        if not column.table and column.name in shadowing:
            column.set("table", exp.to_identifier(table.alias_or_name))


def _bigquery(tree: exp.Expression) -> exp.Expression:
    for select in list(tree.find_all(exp.Select)):
        _qualify_group_by(select)
    return _bottom_up(tree, _bigquery_node)


def type_sql(kind: str, dialect: str) -> str:
    """A contract column type (DuckDB's spelling, e.g. ``TIMESTAMPTZ``) in ``dialect``."""
    return exp.DataType.build(kind, dialect="duckdb").sql(dialect=dialect)


def struct_fields(kind: str) -> dict[str, str] | None:
    """The fields of a ``STRUCT(...)`` contract type (name -> DuckDB type), else None."""
    data_type = exp.DataType.build(kind, dialect="duckdb")
    if data_type.this != exp.DataType.Type.STRUCT:
        return None
    return {f.name: f.args["kind"].sql(dialect="duckdb") for f in data_type.expressions}


_FIXES: dict[str, Callable[[exp.Expression], exp.Expression]] = {
    "spark": _spark,
    "bigquery": _bigquery,
}


@dataclass(frozen=True)
class Macro:
    """A function an engine defines inline: ``body`` (SQL in the target dialect) with each of
    ``params`` replaced by the call's argument (an engine's ``rbm_decode_push``, for one)."""

    params: tuple[str, ...]
    body: str


def _expand(tree: exp.Expression, macros: Mapping[str, Macro], dialect: str) -> exp.Expression:
    bodies = {
        name.lower(): (m, sqlglot.parse_one(m.body, read=dialect)) for name, m in macros.items()
    }

    def replace(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous) or str(node.this).lower() not in bodies:
            return node
        macro, body = bodies[str(node.this).lower()]
        if len(node.expressions) != len(macro.params):
            raise ValidationError(
                "sql", node.sql(), f"{node.this} takes {len(macro.params)} argument(s)"
            )
        arguments = dict(zip(macro.params, node.expressions, strict=True))
        return body.copy().transform(
            lambda n: (
                arguments[n.name].copy()
                if isinstance(n, exp.Column) and not n.table and n.name in arguments
                else n
            )
        )

    return tree.transform(replace)


def statements(
    sql: str, dialect: str, macros: Mapping[str, Macro] | None = None
) -> list[exp.Expression]:
    """The statements of ``sql`` (DuckDB's dialect) as trees ready to be written in ``dialect``."""
    if dialect not in DIALECTS:
        raise ValidationError("dialect", dialect, f"must be one of {', '.join(DIALECTS)}")
    trees = [tree for tree in sqlglot.parse(sql, read="duckdb") if tree is not None]
    if dialect in _FIXES:
        trees = [_FIXES[dialect](tree) for tree in trees]
    if macros:
        trees = [_expand(tree, macros, dialect) for tree in trees]
    return trees


def transpile(
    sql: str, dialect: str, *, pretty: bool = True, macros: Mapping[str, Macro] | None = None
) -> str:
    """``sql`` (DuckDB's dialect, one or more statements) in ``dialect``, DuckDB's meaning kept;
    ``macros`` are expanded inline. ``duckdb`` without macros returns ``sql`` unchanged."""
    if dialect == "duckdb" and not macros:
        return sql
    trees = statements(sql, dialect, macros)
    return ";\n".join(tree.sql(dialect=dialect, pretty=pretty) for tree in trees)

"""Rewrites of a validated fragment's tree so every warehouse gives the same value:
undefined values become NULL, and the forms one warehouse reads otherwise get the
spelling that agrees with the others. Applied when rendering (sql_text.py), bottom up,
so a nested `a / b / c` or `sqrt(ln(x))` is rewritten at every level."""
from __future__ import annotations

from typing import Callable

from sqlglot import exp

from ..validation.column_types import WHOLE_TYPES, value_branches

# beyond this, a decimal(38, 9) overflows: round() keeps the double as it is
ROUND_LIMIT = 1e28


def _bottom_up(tree: exp.Expression, swap: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    """`swap` applied to every node of a copy, children first (sqlglot's transform does
    not go into the node a swap returned, so an inner `/` kept no guard)."""
    tree = tree.copy()
    for node in reversed(list(tree.walk(bfs=False))):
        new = swap(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _nullif_zero(node: exp.Expression) -> exp.Expression:
    return exp.Nullif(this=exp.Paren(this=node), expression=exp.Literal.number(0))


def guard_division(tree: exp.Expression) -> exp.Expression:
    """x / y  ->  x / NULLIF(y, 0) (and so for `%`), at every level: a zero denominator is a
    gap on every warehouse (DuckDB 2 and Postgres raise, ClickHouse returns inf)."""
    def _swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.Div, exp.Mod)):
            return type(node)(this=node.this, expression=_nullif_zero(node.expression))
        return node
    return _bottom_up(tree, _swap)


def guard_undefined(tree: exp.Expression) -> exp.Expression:
    """Where a simple metric's value is undefined, NULL on every warehouse: x / 0 and
    x % 0 (guard_division), the square root of a negative, the logarithm of 0 or less,
    a negative number to a fractional power and 0 to a negative one. Postgres raised and
    failed the whole source's build; DuckDB and ClickHouse stored inf or nan."""
    zero = exp.Literal.number(0)

    def _swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.Sqrt, exp.Ln)):
            arg = node.this
            test = (exp.GTE if isinstance(node, exp.Sqrt) else exp.GT)(this=arg.copy(), expression=zero.copy())
            return type(node)(this=exp.Case(ifs=[exp.If(this=test, true=arg)]))
        if isinstance(node, exp.Pow):
            x, y = node.this, node.expression
            fractional = exp.and_(exp.LT(this=x.copy(), expression=zero.copy()),
                                  exp.NEQ(this=y.copy(), expression=exp.Floor(this=y.copy())))
            pole = exp.and_(exp.EQ(this=x.copy(), expression=zero.copy()), exp.LT(this=y.copy(), expression=zero.copy()))
            return exp.Case(ifs=[exp.If(this=exp.not_(exp.or_(fractional, pole)), true=node)])
        return node
    return _bottom_up(guard_division(tree), _swap)


def for_dialect(tree: exp.Expression, dialect: str) -> exp.Expression:
    """The tree as one warehouse must read it to give what the others give:
    - round(x[, n]) rounds x as a decimal(38, 9), half away from zero, back to a double:
      a double's tie went to even in ClickHouse (and Postgres's round(double)), away
      from zero in DuckDB, and Postgres has no round(double, n) at all (the build
      failed). |x| >= 1e28, inf and nan (no decimal holds them) stay as they are;
    - x % y over numerics in Postgres, which has no double % n;
    - DuckDB's LIKE has no default escape: a pattern with a backslash gets ESCAPE '\\',
      as Postgres and ClickHouse read it (`'user\\_%'`);
    - ClickHouse's lower, upper, substring and position count bytes: their UTF-8 forms
      (`lower('ÜN')` stayed 'Ün');
    - concat(...) skips a NULL part, as DuckDB's and Postgres's concat do (sqlglot wrote
      `a || b`, NULL when a part is; `||` itself stays so);
    - extract(second ...) is whole seconds (Postgres kept the fraction), extract(epoch ...)
      keeps the fraction (ClickHouse dropped it);
    - trim removes spaces only (DuckDB's removed any Unicode white space);
    - cast(x as smallint|integer|bigint|decimal(p, s)) of a number (by the declared
      types: validation marks it CAST_ROUNDS) rounds half away from zero, as round()
      does (_rounded_cast: ClickHouse truncated, DuckDB and Postgres rounded a double's
      tie to even, and each read a double's digits past the 9th its own way)."""
    def _decimal(node: exp.Expression, exact: bool) -> exp.Expression:
        if exact and dialect == "clickhouse":
            # its double -> decimal cast truncates (33.55 -> 33.549999999), and so does its
            # parse of a longer text (14.499999999999998 -> 14.499999999, where DuckDB and
            # Postgres round to 14.5): the double is rounded to 9 decimals, then read as text
            node = exp.Cast(this=exp.Round(this=node, decimals=exp.Literal.number(9)), to=exp.DataType.build("varchar"))
        return exp.Cast(this=node, to=exp.DataType.build("decimal(38, 9)" if exact else "decimal"))

    def _swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Round):
            x = node.this
            digits = {"decimals": node.args["decimals"].copy()} if node.args.get("decimals") is not None else {}
            rounded = exp.Cast(this=exp.Round(this=_decimal(x.copy(), True), **digits), to=exp.DataType.build("double"))
            within = exp.LT(this=exp.Abs(this=x.copy()), expression=exp.Literal.number(f"{ROUND_LIMIT:.0e}"))
            return exp.Case(ifs=[exp.If(this=within, true=rounded)], default=exp.Cast(this=x, to=exp.DataType.build("double")))
        if dialect == "postgres" and isinstance(node, exp.Mod):
            return exp.Mod(this=_decimal(node.this, False), expression=_decimal(node.expression, False))
        if (dialect == "duckdb" and isinstance(node, (exp.Like, exp.ILike))
                and isinstance(node.expression, exp.Literal) and "\\" in node.expression.this):
            return exp.Escape(this=node.copy(), expression=exp.Literal.string("\\"))
        if isinstance(node, exp.Concat):
            if dialect != "clickhouse":
                return exp.Concat(expressions=node.expressions, safe=True, coalesce=True)
            return exp.Anonymous(this="concat", expressions=[
                exp.Anonymous(this="ifNull", expressions=[exp.Anonymous(this="toString", expressions=[part]),
                                                          exp.Literal.string("")]) for part in node.expressions])
        if dialect == "postgres" and isinstance(node, exp.Extract) and node.this.name.lower() == "second":
            return exp.Floor(this=node)
        if dialect == "clickhouse" and isinstance(node, exp.Extract) and node.this.name.lower() == "epoch":
            micros = exp.Anonymous(this="toUnixTimestamp64Micro", expressions=[exp.Anonymous(
                this="toDateTime64", expressions=[node.expression, exp.Literal.number(6), exp.Literal.string("UTC")])])
            return exp.Div(this=micros, expression=exp.Literal.number(1_000_000))
        if dialect == "duckdb" and isinstance(node, exp.Trim) and node.args.get("expression") is None:
            trimmed = node.copy()
            trimmed.set("expression", exp.Literal.string(" "))
            return trimmed
        if isinstance(node, exp.Cast) and node.meta.get(CAST_ROUNDS):
            return _rounded_cast(node, dialect, _decimal)
        if dialect == "clickhouse" and node.meta.get(MIXED_NUMBERS):
            return _as_doubles(node)
        if dialect == "clickhouse":
            return _utf8(node)
        return node
    return _bottom_up(tree, _swap)


def _as_doubles(node: exp.Expression) -> exp.Expression:
    """A case/if/coalesce/greatest/least of whole and fractional numbers with every value a
    double (ClickHouse has no common type for Int64 and Float64)."""
    node = node.copy()
    for branch in value_branches(node):
        branch.replace(exp.Cast(this=branch.copy(), to=exp.DataType.build("double")))
    return node


def _rounded_cast(node: exp.Cast, dialect: str, decimal: Callable) -> exp.Expression:
    """cast(x as <whole number>) or cast(x as decimal(p, s)) of a number: x as a
    decimal(38, 9) (as round() reads it), rounded half away from zero to the type's
    scale, then cast. |x| of 1e28 or more is cast as the warehouse casts it (no
    decimal(38, 9) holds it). ClickHouse computes on with a double (its decimal division
    keeps the dividend's scale: 37.15 where the others gave 37.1667)."""
    x, to = node.this, node.to
    if to.this in WHOLE_TYPES:
        return exp.Cast(this=exp.Round(this=decimal(x, True)), to=to)
    scale = to.expressions[1].this.copy()
    rounded = exp.Cast(this=exp.Round(this=decimal(x.copy(), True), decimals=scale), to=to.copy())
    within = exp.LT(this=exp.Abs(this=x.copy()), expression=exp.Literal.number(f"{ROUND_LIMIT:.0e}"))
    cast = exp.Case(ifs=[exp.If(this=within, true=rounded)], default=exp.Cast(this=x, to=to))
    return exp.Cast(this=cast, to=exp.DataType.build("double")) if dialect == "clickhouse" else cast


# validation marks a cast of a number to a whole-number type or a decimal(p, s) (column_types.py)
CAST_ROUNDS = "cast_rounds"
# validation marks a case/if/coalesce/greatest/least of whole and fractional numbers
MIXED_NUMBERS = "mixed_numbers"
_UTF8 = {exp.Lower: "lowerUTF8", exp.Upper: "upperUTF8"}


def _utf8(node: exp.Expression) -> exp.Expression:
    """ClickHouse's spelling of the text functions that count characters."""
    if type(node) in _UTF8:
        return exp.Anonymous(this=_UTF8[type(node)], expressions=[node.this])
    if isinstance(node, exp.Substring):
        parts = [node.this, node.args["start"]] + ([node.args["length"]] if node.args.get("length") else [])
        return exp.Anonymous(this="substringUTF8", expressions=parts)
    if isinstance(node, exp.StrPosition):
        return exp.Anonymous(this="positionUTF8", expressions=[node.this, node.args["substr"]])
    return node


def rendered_size(tree: exp.Expression) -> int:
    """About how many nodes the rewritten tree has, counted without building it: each
    guard of sqrt or ln repeats its argument twice, each round, power and cast three times, so nesting
    multiplies the size (validation bounds it before anything is built)."""
    grows = {exp.Sqrt: 2, exp.Ln: 2, exp.Round: 3, exp.Pow: 3, exp.Cast: 3}
    size: dict[int, int] = {}
    for node in reversed(list(tree.walk(bfs=False))):  # children first
        inner = sum(size[id(child)] for child in node.iter_expressions())
        size[id(node)] = min(1 + grows.get(type(node), 1) * inner, 10**9)
    return size[id(tree)]

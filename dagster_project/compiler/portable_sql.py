"""Rewrites of a validated fragment's tree so every warehouse gives the same value:
undefined values become NULL, and the forms one warehouse reads otherwise get the
spelling that agrees with the others. Applied when rendering (sql_text.py), bottom up,
so a nested `a / b / c` or `sqrt(ln(x))` is rewritten at every level."""
from __future__ import annotations

from typing import Callable

from sqlglot import exp

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
    x % 0 (guard_division), the square root of a negative, the logarithm of 0 or less.
    Postgres raised and failed the whole source's build; DuckDB stored inf or nan."""
    def _swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.Sqrt, exp.Ln)):
            arg = node.this
            test = (exp.GTE if isinstance(node, exp.Sqrt) else exp.GT)(this=arg.copy(), expression=exp.Literal.number(0))
            return type(node)(this=exp.Case(ifs=[exp.If(this=test, true=arg)]))
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
      as Postgres and ClickHouse read it (`'user\\_%'`)."""
    def _decimal(node: exp.Expression, exact: bool) -> exp.Expression:
        if exact and dialect == "clickhouse":  # its double -> decimal cast truncates (33.55 -> 33.549999999)
            node = exp.Cast(this=node, to=exp.DataType.build("varchar"))
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
        return node
    return _bottom_up(tree, _swap)


def rendered_size(tree: exp.Expression) -> int:
    """About how many nodes the rewritten tree has, counted without building it: each
    guard of sqrt or ln repeats its argument twice, each round three times, so nesting
    multiplies the size (validation bounds it before anything is built)."""
    grows = {exp.Sqrt: 2, exp.Ln: 2, exp.Round: 3}
    size: dict[int, int] = {}
    for node in reversed(list(tree.walk(bfs=False))):  # children first
        inner = sum(size[id(child)] for child in node.iter_expressions())
        size[id(node)] = min(1 + grows.get(type(node), 1) * inner, 10**9)
    return size[id(tree)]

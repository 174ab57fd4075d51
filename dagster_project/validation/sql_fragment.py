"""User SQL fragments (`filter`, `expression`) are parsed with sqlglot and accepted only
when they are one scalar expression over the source's columns. The compiler renders the
parsed tree for each warehouse; the text the user wrote never reaches SQL as-is."""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from .column_types import is_bool_type, mark_mixed_numbers, mark_rounding_casts

DIALECTS = ("duckdb", "postgres", "clickhouse")
# sqlglot logs its fallbacks ("... Falling back to parsing as a 'Command'") to stderr, with
# no file or line: the refusal below says what is wrong, where
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# Node types a scalar expression may contain. Anything else (subqueries, aggregates,
# window functions, table functions, unknown functions, placeholders) is rejected.
_OPERATORS = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Tuple,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.And, exp.Or, exp.Not, exp.Xor, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg,
    exp.Case, exp.If, exp.Cast, exp.DataType, exp.DataTypeParam, exp.Var,
    exp.DPipe, exp.Interval,
)
# Scalar functions every target has (sqlglot renders each one per dialect).
_FUNCTIONS = (
    exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Abs, exp.Round, exp.Floor,
    exp.Ceil, exp.Sqrt, exp.Ln, exp.Exp, exp.Pow, exp.Sign, exp.Lower, exp.Upper,
    exp.Length, exp.Substring, exp.Trim, exp.Concat, exp.StrPosition, exp.Extract,
)
_ALLOWED = _OPERATORS + _FUNCTIONS
# Derived metrics combine other metrics' values: arithmetic only.
_ARITHMETIC = (exp.Column, exp.Identifier, exp.Literal, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg, exp.Null)


_STATEMENTS = tuple(
    getattr(exp, n) for n in ("Query", "DDL", "DML", "Command", "Drop", "Create", "Insert", "Update", "Delete", "Merge",
                              "Alter", "Use", "Set", "Pragma", "Copy", "Transaction", "Commit", "Rollback", "Describe")
    if hasattr(exp, n)
)


_COMMENT = "contains a SQL comment: remove it (comments could hide a second statement)"


class FragmentError(ValueError):
    """Why a fragment was refused (the message says what to write instead)."""


@dataclass(frozen=True)
class Fragment:
    text: str
    tree: exp.Expression

    @property
    def columns(self) -> list[str]:
        return sorted({c.name.lower() for c in self.tree.find_all(exp.Column)})

    def render(self, dialect: str) -> str:
        return self.tree.sql(dialect=dialect)


MAX_DEPTH = 50


def _parse_single(text: str) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise FragmentError("is empty; write one SQL expression")
    try:
        tokens = sqlglot.tokenize(text)
    except TokenError as err:
        raise FragmentError(_unclosed(text) or f"cannot be read as SQL ({err})") from None
    depth = 0
    for tok in tokens:
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(tok.token_type, 0)
        if depth > MAX_DEPTH:  # the parser and the SQL writer recurse per level
            raise FragmentError(f"nests parentheses more than {MAX_DEPTH} deep")
        if tok.token_type == TokenType.SEMICOLON:
            raise FragmentError("contains ';': write a single expression, not statements")
        if tok.comments:
            raise FragmentError(_COMMENT)
    try:
        trees = [t for t in sqlglot.parse(text) if t is not None]
    except ParseError as err:
        raise FragmentError(_parse_problem(err)) from None
    except TokenError as err:
        raise FragmentError(_unclosed(text) or f"cannot be read as SQL ({err})") from None
    except RecursionError:
        raise FragmentError("is nested too deeply to read") from None
    except Exception as err:  # sqlglot's own errors on odd input (a quoted type it cannot build)
        raise FragmentError(f"is not valid SQL ({type(err).__name__})") from None
    if len(trees) != 1:
        raise FragmentError("must be exactly one expression")
    if _tree_depth(trees[0]) > MAX_TREE_DEPTH:
        raise FragmentError(f"chains more than {MAX_TREE_DEPTH} operators or calls in one expression: the warehouses "
                            "refuse expressions that deep (DuckDB and ClickHouse at 1,000 levels); simplify it")
    return trees[0]


# parts a fragment may grow to once portable_sql rewrites it (nested sqrt, ln, round repeat their argument)
MAX_RENDERED = 20_000

# `a + a + ... + a` nests one level per operator, without parentheses; the warehouses stop
# at 1,000 (DuckDB, ClickHouse), and the rollup wraps the expression a few levels deeper
MAX_TREE_DEPTH = 500


def _unclosed(text: str) -> str | None:
    """What the tokenizer could not read, when it is a string or quoted name left open
    (its own message cuts the text off: `Error tokenizing 'country = 'U'`), or a comment."""
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and text[i:i + 2] in ("--", "/*"):  # a quote after it is in the comment
            return _COMMENT
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            if text[i + 1:i + 2] == quote:  # '' inside a string is one quote
                i += 1
            else:
                quote = None
        i += 1
    if quote is None:
        return None
    what = "a string" if quote == "'" else "a quoted name"
    return f"has {what} that is never closed: add the closing `{quote}`"


_KEYWORDS = {"not", "and", "or", "then", "else", "when", "case", "in", "is", "between", "like", "ilike"}


def _parse_problem(err: ParseError) -> str:
    """sqlglot's parse error in the author's words: its messages name its own classes
    (`Required keyword: 'expression' missing for <class '...EQ'>`)."""
    first = (err.errors or [{}])[0]
    what, token = str(first.get("description") or ""), str(first.get("highlight") or "").strip()
    line, col = first.get("line"), first.get("col")
    at = f"column {col}" if line in (None, 1) else f"line {line}, column {col}"
    if what.startswith("Required keyword") and token:
        if token == ")":  # `(a =)`
            return f"is incomplete before `)` ({at}): an expression is missing"
        if str(first.get("end_context") or "").strip():  # something follows: `a = = 1`
            return f"has an unexpected `{token}` at {at}"
        if re.fullmatch(r"\w+", token) and "'this'" in what and token.lower() not in _KEYWORDS:
            return f"is missing an operand near `{token}` ({at})"  # `a = 1 and = 2`
        return f"is incomplete: nothing after `{token}` ({at}) where an expression should follow"
    if what.startswith("Expecting ") and token:
        return f"expects `{what.removeprefix('Expecting ').strip()}` at {at}"
    if what.startswith("Invalid expression") and token:
        return f"has an unexpected `{token}` at {at}"
    if "<class" in what or not what:
        return f"is not valid SQL near `{token}` ({at})" if token else "is not valid SQL"
    return f"is not valid SQL: {what} ({at})"


def _tree_depth(tree: exp.Expression) -> int:
    """Nesting depth; a chain of `and` or of `or` counts once (the warehouses read it as
    one list: a filter of 600 `x = '..' or` terms builds)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:  # not recursive: the tree may be deeper than Python's recursion limit
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth if isinstance(node, exp.Connector) and type(child) is type(node) else depth + 1)
                     for child in node.iter_expressions())
    return deepest


def parse_scalar(text: str, columns: dict[str, object] | None = None) -> Fragment:
    """A filter or measure: one scalar expression over `columns` (names, lowercase)."""
    tree = _parse_single(text)
    if isinstance(tree, _STATEMENTS):
        raise FragmentError(f"must be a scalar expression, not a {type(tree).__name__.upper()} statement")
    for node in tree.walk():
        if isinstance(node, (exp.Subquery, exp.Query)):
            raise FragmentError("must not contain a subquery")
        if isinstance(node, exp.AggFunc):
            raise FragmentError(f"must not aggregate ({node.sql()}): the metric's `aggregation` does that")
        if isinstance(node, exp.Window):
            raise FragmentError("must not contain a window function")
        if isinstance(node, exp.Anonymous):
            raise FragmentError(f"uses unknown function `{node.name}`")
        problem = _part_problem(node)  # (before the allow-list: `div` and try_cast get their own reason)
        if problem:
            raise FragmentError(problem)
        if not isinstance(node, _ALLOWED):
            if isinstance(node, exp.Func):
                raise FragmentError(f"uses function `{node.sql_name()}`, which is not allowed in metric SQL")
            raise FragmentError(f"contains `{node.sql()}` ({type(node).__name__}), which is not allowed in metric SQL")
        if isinstance(node, exp.Column) and node.table:
            raise FragmentError(f"qualifies column `{node.sql()}`: use the bare column name")
    _check_rendering(tree)
    from ..compiler.portable_sql import rendered_size
    if rendered_size(tree) > MAX_RENDERED:  # each guard of sqrt/ln and each round repeats its argument
        raise FragmentError(f"grows past {MAX_RENDERED:,} parts once made the same on every warehouse (nested "
                            "sqrt, ln or round repeat their argument): simplify it")
    fragment = Fragment(text, tree)
    if columns is not None:
        unknown = [c for c in fragment.columns if c not in columns]
        if unknown:
            raise UnknownColumns(unknown)
        # the source's columns are named in lowercase (dbt YAML): `COUNTRY` and `"Country"` mean
        # `country`, and are written so (ClickHouse's identifiers, and Postgres's quoted ones,
        # are case-sensitive)
        # (a quoted name stays quoted: `"user"` and `"order"` are keywords unquoted)
        fragment = Fragment(text, tree.transform(
            lambda n: exp.column(exp.to_identifier(n.name.lower(), quoted=bool(n.this.args.get("quoted"))))
            if isinstance(n, exp.Column) and n.name != n.name.lower() else n))
        from ..compiler.portable_sql import CAST_ROUNDS, MIXED_NUMBERS
        declared = {k: v if isinstance(v, str) else None for k, v in columns.items()}
        mark_rounding_casts(fragment.tree, declared, CAST_ROUNDS)
        mark_mixed_numbers(fragment.tree, declared, MIXED_NUMBERS)
    return fragment


def _check_rendering(tree: exp.Expression) -> None:
    """Each warehouse's rendering reads back as one expression over the same columns, with
    no query in it. The checks above refuse every part sqlglot writes back as raw text
    that we know of (types, units); this catches one we do not, before it reaches SQL."""
    want = sorted(c.name.lower() for c in tree.find_all(exp.Column))
    for dialect in DIALECTS:
        rendered = tree.sql(dialect=dialect)
        try:
            back = [t for t in sqlglot.parse(rendered, read=dialect) if t is not None]
        except Exception:  # noqa: BLE001 - any failure to read it back is a refusal
            back = []
        if (len(back) != 1 or isinstance(back[0], _STATEMENTS)
                or any(isinstance(n, (exp.Subquery, exp.Query, exp.Command)) for n in back[0].walk())
                or sorted(c.name.lower() for c in back[0].find_all(exp.Column)) != want):
            raise FragmentError(f"does not read back as the same expression once written for {dialect}: "
                                "simplify it (no quoted types or units)")


T = exp.DataType.Type
# The types a cast may name: each reads the same on every warehouse. A type sqlglot does
# not know keeps the user's text, which it writes back unquoted (`cast(x as "a;b")` became
# `CAST(x AS a;b)`): never rendered.
_CAST_TYPES = {T.BOOLEAN, T.SMALLINT, T.INT, T.BIGINT, T.DOUBLE, T.DECIMAL, T.VARCHAR, T.TEXT, T.DATE, T.TIMESTAMP,
               T.DATETIME, T.TIMESTAMPTZ}
CAST_HINT = "boolean, smallint, integer, bigint, double, decimal(p, s), varchar, date, timestamp, timestamptz"
# the units `extract` and `interval` may name (sqlglot keeps a unit's text as written)
# (`dayofweek` fails in ClickHouse and Postgres; `dow`, `doy`, `isodow` and `epoch` build in
# DuckDB, Postgres and chDB alike, checked)
UNITS = {"year", "quarter", "month", "week", "day", "hour", "minute", "second", "dow", "doy", "epoch", "isodow"}
INTERVAL_UNITS = {"year", "month", "week", "day", "hour", "minute", "second",
                  "years", "months", "weeks", "days", "hours", "minutes", "seconds"}


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "..."


def _part_problem(node: exp.Expression) -> str | None:
    """Why a type, a unit or a name in a fragment is refused: the parts whose text
    sqlglot writes back as it was read (a quoted type, unit or parameter would carry SQL)."""
    if isinstance(node, exp.DataType):
        kind, params = node.this, node.expressions
        if not isinstance(kind, T):  # `interval day 'x'` reads as a type holding an interval
            return f"`{_short(node.sql())}` is not a type: write one of {CAST_HINT}"
        if kind == T.TINYINT:
            return ("casts to `tinyint` (or `int8`): 1 byte in ClickHouse, 8 bytes as `int8` in Postgres and DuckDB, "
                    "and Postgres has no tinyint: write smallint, integer or bigint")
        if kind == T.FLOAT:
            return ("casts to a 4-byte float (`float`, `real`, `float4`; `float` is 8 bytes in Postgres, 4 elsewhere): "
                    "write double")
        if kind not in _CAST_TYPES:
            written = node.args.get("kind") if kind == T.USERDEFINED else kind.value.lower()
            return f"casts to `{_short(str(written))}`, a type not every warehouse reads the same: write one of {CAST_HINT}"
        if kind == T.DECIMAL and len(params) == 2 and all(isinstance(q.this, exp.Literal) and q.this.name.isdigit()
                                                         for q in params):
            precision, scale = (int(q.this.name) for q in params)
            if not (1 <= precision <= 38 and 0 <= scale <= min(precision, 9)):
                return (f"decimal({precision}, {scale}): precision 1 to 38 (DuckDB's most), scale 0 to the precision and "
                        "at most 9 (the warehouses agree on a number's first 9 decimals)")
        if kind == T.DECIMAL and len(params) != 2:
            return ("gives decimal no precision and scale: write e.g. decimal(18, 4) (the warehouses' defaults differ: "
                    "DuckDB 18, 3; ClickHouse 10, 0; Postgres unlimited)")
        if kind != T.DECIMAL and params:
            return (f"gives `{kind.value.lower()}` a length or precision: write it without one (Postgres cuts to it, "
                    "DuckDB and ClickHouse do not)")
        return None
    if isinstance(node, exp.DataTypeParam):
        value = node.this
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            return f"a type's precision and scale are whole numbers, not `{_short(value.sql())}`"
        return None
    if isinstance(node, exp.Interval):
        # `interval 'x'' day) or (select 1' day` reads back safely quoted, but a text that
        # is no amount fails the whole source's build on Postgres
        amount = node.this
        # (a whole number: DuckDB read '1.5' day as 1 day, ClickHouse refused it)
        m = re.fullmatch(r"\s*-?\d+(?:\s+([a-z]+))?\s*", amount.name.lower()) \
            if isinstance(amount, exp.Literal) else None
        if m is None or m.group(1) and (m.group(1) not in INTERVAL_UNITS or node.args.get("unit")):
            return f"an interval is a number and a unit, e.g. interval '2' hour, not `{_short(node.sql())}`"
        return None
    return _form_problem(node)


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (ValueError, OverflowError):
        return True  # not a decimal number (a hex literal...): the other checks judge it


def _form_problem(node: exp.Expression) -> str | None:
    """Forms of an allowed node that some warehouse cannot build (every metric of the
    source failed): `cast(... format ...)`, `x is 1`, `x in y`, `ceil(x, 1)`, a quoted unit."""
    if isinstance(node, exp.Literal) and not node.is_string and not _finite(node.this):
        # ClickHouse refuses 1e400 as a syntax error (the source's every metric failed), DuckDB reads inf
        return f"`{_short(node.this)}` is beyond the range of a double"
    if isinstance(node, exp.TryCast):
        return "try_cast is no function in Postgres (it became a cast that fails the build): write cast"
    if isinstance(node, exp.IntDiv):
        return "`div` divides whole numbers differently per warehouse: write floor(x / y)"
    if isinstance(node, exp.Cast) and any(node.args.get(k) is not None for k in ("format", "default", "action")):
        return f"`{_short(node.sql())}`: a cast takes a value and a type only"
    if isinstance(node, exp.Is) and not isinstance(node.expression, (exp.Null, exp.Boolean)):
        return f"`{_short(node.sql())}`: `is` takes null, true or false (write `=` to compare)"
    if isinstance(node, exp.In) and any(node.args.get(k) is not None for k in ("field", "query", "unnest")):
        return f"`{_short(node.sql())}`: `in` takes a list in parentheses, e.g. x in ('a', 'b')"
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        digits = node.args["decimals"]
        text = ("-" + digits.this.name) if isinstance(digits, exp.Neg) and isinstance(digits.this, exp.Literal) else \
            digits.name if isinstance(digits, exp.Literal) and not digits.is_string else ""
        if not re.fullmatch(r"-?\d+", text) or not -28 <= int(text) <= 9:
            return (f"`{_short(node.sql())}`: round's decimals are a whole number from -28 to 9 (it rounds a "
                    "decimal(38, 9), the same on every warehouse)")
    if isinstance(node, exp.Substring):
        # (DuckDB and ClickHouse count a negative start from the end, Postgres from before
        # the first character; ClickHouse refuses 0)
        for part, least in (("start", 1), ("length", 0)):
            value = node.args.get(part)
            if value is not None and not (isinstance(value, exp.Literal) and not value.is_string
                                          and value.name.isdigit() and least <= int(value.name) <= 2**31 - 1):
                return (f"`{_short(node.sql())}`: substring's start is a whole number from 1 and its length one from 0, "
                        "each at most 2147483647 (the warehouses read a negative, zero or computed start differently)")
    if isinstance(node, (exp.Ceil, exp.Floor)) and node.args.get("decimals") is not None:
        return f"`{_short(node.sql())}`: ceil and floor take one argument (round(x, n) rounds to n decimals)"
    if isinstance(node, exp.Extract) and not isinstance(node.this, exp.Var):
        return f"`{_short(node.sql())}`: extract's unit is written unquoted, e.g. extract(dow from created_at)"
    if isinstance(node, exp.Var):
        unit = node.name.lower()
        units = INTERVAL_UNITS if isinstance(node.parent, exp.Interval) else UNITS
        if not (isinstance(node.parent, (exp.Extract, exp.Interval)) and unit in units):
            return f"`{_short(node.name)}` is not a time unit here: write one of {', '.join(sorted(units))}, unquoted"
        return None
    if isinstance(node, exp.Identifier) and not isinstance(node.parent, exp.Column):
        return f"`{_short(node.name)}` is not a column here"
    return None


# arithmetic, text and numbers: values, not conditions (DuckDB reads a number as true)
_NOT_A_CONDITION = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.DPipe, exp.Literal, exp.Cast,
                    exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor)


# functions whose result is a number or a text, never true or false
_VALUE_FUNCTIONS = (exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Lower, exp.Upper, exp.Length, exp.Substring,
                    exp.Concat, exp.Trim, exp.Coalesce)
_PREDICATES = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.In, exp.Between, exp.Exists)


def check_condition(fragment: Fragment, columns: dict[str, str | None] | None = None) -> None:
    """A filter is a condition: true or false per row (`amount > 100`, `refunded`). A
    value is refused (DuckDB reads a number as true, Postgres refuses it, a text fails
    the build): arithmetic, a literal, a value function (`coalesce(amount, 0)`), a
    `case` whose branches are values, a bare column whose declared type (`columns`) is
    not boolean."""
    tree = fragment.tree
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Cast) and tree.to.is_type("boolean"):
        return
    value = isinstance(tree, _NOT_A_CONDITION + _VALUE_FUNCTIONS) and not isinstance(tree, exp.Boolean)
    if isinstance(tree, (exp.Case, exp.If)):
        branches = [i.args.get("true") for i in tree.args.get("ifs") or []] + [tree.args.get("default")] \
            if isinstance(tree, exp.Case) else [tree.args.get("true"), tree.args.get("false")]
        value = any(b is not None and not isinstance(b, _PREDICATES) for b in branches)
    if value:
        raise FragmentError(f"is a value, not a condition (`{tree.sql()}`): compare it, e.g. `{tree.sql()} > 0`")
    if isinstance(tree, exp.Column) and columns:
        declared = columns.get(tree.name.lower())
        if declared and not is_bool_type(declared):
            raise FragmentError(f"`{tree.name}` is {declared}, not a condition: compare it, e.g. "
                                f"`{tree.name} is not null`")


class UnknownColumns(FragmentError):
    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


def parse_arithmetic(text: str) -> Fragment:
    """A derived metric's expression: + - * / and parentheses over metric names and numbers."""
    tree = _parse_single(text)
    for node in tree.walk():
        if not isinstance(node, _ARITHMETIC) or isinstance(node, exp.Literal) and node.is_string:
            raise FragmentError(
                f"may only combine metric names and numbers with + - * / and parentheses; `{node.sql()}` is not allowed"
            )
        if isinstance(node, exp.Column) and node.table:
            raise FragmentError(f"`{node.sql()}`: refer to metrics by bare name")
        # a number no double holds (1e400) became inf, and an empty bucket's value nan:
        # `cast(nan as double)` in the generated SQL failed every metric's build
        if isinstance(node, exp.Literal) and not _finite(node.this):
            raise FragmentError(f"`{node.this}` is beyond the range of a double")
    return Fragment(text, tree)


def evaluate_arithmetic(tree: exp.Expression, values: dict[str, float | None]) -> float | None:
    """Evaluate a derived expression for given input values (SQL NULL rules; x/0 is NULL).
    Used for the value of an empty bucket of a derived metric."""
    if isinstance(tree, exp.Paren):
        return evaluate_arithmetic(tree.this, values)
    if isinstance(tree, exp.Column):
        return values[tree.name.lower()]
    if isinstance(tree, exp.Literal):
        return float(tree.this)
    if isinstance(tree, exp.Null):
        return None
    if isinstance(tree, exp.Neg):
        v = evaluate_arithmetic(tree.this, values)
        return None if v is None else -v
    left = evaluate_arithmetic(tree.this, values)
    right = evaluate_arithmetic(tree.expression, values)
    if left is None or right is None:
        return None
    if isinstance(tree, exp.Add):
        return left + right
    if isinstance(tree, exp.Sub):
        return left - right
    if isinstance(tree, exp.Mul):
        return left * right
    if isinstance(tree, exp.Div):
        return None if right == 0 else left / right
    raise FragmentError(f"cannot evaluate {tree.sql()}")

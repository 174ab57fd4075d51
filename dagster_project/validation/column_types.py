"""Declared column types (the dbt YAML's `data_type`): which are time, text or number
types, and the comparisons the warehouses refuse at build time: a number column
compared with a text that is no number (`amount = 'abc'`: all three), a text column
with a number (`country = 1`: Postgres always, ClickHouse on a value that is no
number; a metric builds on every warehouse), a time column with a number (DuckDB and
Postgres) or with a text that is no date and time ('2026-13-45', 'yesterday'), a
boolean with anything but true or false; arithmetic on a text or a boolean; a number
function (`abs`, `round`, `extract`'s time) given the wrong kind of value. The build
fails the whole rollup of the source over them, naming no metric; validation names
the file and line. Undeclared types are left to the build."""
from __future__ import annotations

import datetime as dt
import re

from sqlglot import exp

_TIME_TYPE = re.compile(
    r"(timestamp(\(\d+\))?(tz|_s|_ms|_us|_ns)?( with(out)? time zone)?"
    r"|datetime(64)?(\(.*\))?|date(32)?)")
_TEXT_TYPE = re.compile(r"(varchar|text|string|char|character|character varying|bpchar|fixedstring|nvarchar|nchar)"
                        r"(\(.*\))?")
_BOOL_TYPE = re.compile(r"bool|boolean")
_NUMBER_TYPE = re.compile(
    r"(tiny|small|medium|big|huge)?int(eger)?|u?int\d+|decimal\d*(\(.*\))?|numeric(\(.*\))?"
    r"|double( precision)?|float\d*|real|number(\(.*\))?")
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _base(declared: str) -> str:
    """`Nullable(LowCardinality(String))` -> `string`; lowercase, single spaces, no wrappers."""
    t = " ".join(declared.lower().split()).replace(" (", "(")
    while True:
        m = re.fullmatch(r"(nullable|lowcardinality)\((.*)\)", t)
        if not m:
            return t
        t = m.group(2)


def is_time_type(declared: str) -> bool:
    return _TIME_TYPE.fullmatch(_base(declared)) is not None


def is_bool_type(declared: str) -> bool:
    return _BOOL_TYPE.fullmatch(_base(declared)) is not None


def is_string_type(declared: str) -> bool:
    """Text or boolean: not a number a rollup's double `value` can hold."""
    t = _base(declared)
    return _TEXT_TYPE.fullmatch(t) is not None or _BOOL_TYPE.fullmatch(t) is not None


# the cast types that hold whole numbers
WHOLE_TYPES = (exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT)
_INTEGER_TYPE = re.compile(r"(tiny|small|medium|big|huge)?int(eger)?|u?int\d+|serial|bigserial|smallserial")


def is_integer_type(declared: str) -> bool:
    return _INTEGER_TYPE.fullmatch(_base(declared)) is not None


def unlabelled_dimension(declared: str | None) -> bool:
    """A declared type whose values the warehouses write as different texts: a number
    that may have a fraction, a time of day (a date is the same everywhere)."""
    if not declared:
        return False
    kind, t = _kind(declared), _base(declared)
    whole = is_integer_type(declared) or re.fullmatch(r"(decimal|numeric)\d*\(\s*\d+\s*,\s*0\s*\)", t) is not None
    return kind == "number" and not whole or kind == "time" and t not in ("date", "date32")


def _is_whole(node: exp.Expression, columns: dict[str, str | None]) -> bool:
    """Known to be a whole number: an integer literal, a column declared as an integer,
    a cast to a whole-number type."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal):
        return not node.is_string and node.this.lstrip("-").isdigit()
    if isinstance(node, exp.Column):
        declared = columns.get(node.name.lower())
        return bool(declared) and is_integer_type(declared)
    if isinstance(node, exp.Cast):
        return node.to.this in WHOLE_TYPES
    return False


_ROUNDED_TYPES = (*WHOLE_TYPES, exp.DataType.Type.DECIMAL)


def mark_rounding_casts(tree: exp.Expression, columns: dict[str, str | None], mark: str) -> None:
    """Mark (node.meta[mark]) each cast to a whole-number type or a decimal of a value the
    declared types say is a number that may have a fraction: compiler/portable_sql.py
    rounds it, the same on every warehouse. A value of unknown type is left as the
    warehouse casts it."""
    for node in tree.find_all(exp.Cast):
        if node.to.this in _ROUNDED_TYPES and value_kind(node.this, columns) == "number" \
                and not _is_whole(node.this, columns):
            node.meta[mark] = True


def _kind(declared: str | None) -> str | None:
    if not declared:
        return None
    t = _base(declared)
    for kind, pattern in (("number", _NUMBER_TYPE), ("time", _TIME_TYPE), ("text", _TEXT_TYPE)):
        if pattern.fullmatch(t):
            return kind
    return None


def _literal(node: exp.Expression) -> tuple[str, str] | None:
    """('text', value) or ('number', text) for a literal (a negated number too)."""
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return "number", "-" + node.this.this
    if isinstance(node, exp.Literal):
        return ("text" if node.is_string else "number"), node.this
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# a date, or a date and a time, in the forms the three warehouses read alike in a comparison
# (a zone name, 'infinity' or '20260131' is read by some only)
_TIME_LITERAL = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?"
                           r"(?: ?(?:Z|UTC|[+-]\d{2}(?::?\d{2})?))?")
_BOOL_LITERALS = ("true", "false")
# a date or a time with an offset other than +00:00 (fullmatch)
_OFFSET = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)? ?[+-](?!00(?::?00)?$)\d{2}(?::?\d{2})?")


def _is_time(text: str) -> bool:
    m = _TIME_LITERAL.fullmatch(text.strip())
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups())
    try:
        dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _problem(column: str, declared: str, kind: str, literal: tuple[str, str]) -> str | None:
    lit_kind, value = literal
    if kind == "boolean" and lit_kind == "number":
        return (f"`{column}` is {declared}: compare it with true or false, not {value} (Postgres refuses a number; "
                f"or write `{column}` or `not {column}`)")
    if kind == "boolean" and value.lower() not in _BOOL_LITERALS:
        return (f"`{column}` is {declared}: compare it with true or false, not '{value}' (the warehouses read "
                f"different words as booleans; or write `{column}` or `not {column}`)")
    if kind == "time" and lit_kind == "text" and not _is_time(value):
        return (f"`{column}` is {declared}: '{value}' is not a date or time in a form every warehouse reads the same "
                "way (write e.g. '2026-01-31' or '2026-01-31 12:00:00')")
    if kind == "time" and lit_kind == "text" and _OFFSET.fullmatch(value.strip()):
        return (f"`{column}` is {declared}: '{value}' has an offset, which DuckDB and Postgres drop when they compare "
                "it with a timestamp without time zone: write the time in UTC without one (e.g. '2026-01-31 12:00:00')")
    if kind == "number" and lit_kind == "text" and not _is_number(value):
        return f"`{column}` is {declared}: no warehouse compares it with the text '{value}' (the build fails)"
    if kind == "time" and lit_kind == "number":
        return (f"`{column}` is {declared}: DuckDB and Postgres refuse to compare it with the number {value} "
                f"(write a date or timestamp in quotes, e.g. '2026-01-31')")
    if kind == "text" and lit_kind == "number":
        return (f"`{column}` is {declared}: Postgres refuses to compare it with the number {value}, and ClickHouse "
                f"fails on a value that is no number (DuckDB casts it): quote it, '{value}'")
    return None


def comparison_problems(tree: exp.Expression, columns: dict[str, str | None]) -> list[str]:
    """One message per comparison of a declared column with a literal of a type it cannot take."""
    out: list[str] = []

    def check(col: exp.Expression, other: exp.Expression) -> None:
        if not isinstance(col, exp.Column):
            return
        declared = columns.get(col.name.lower())
        kind, literal = _declared_kind(declared), _literal(other)
        if kind is None or literal is None:
            return
        problem = _problem(col.name.lower(), declared, kind, literal)
        if problem and problem not in out:
            out.append(problem)

    for node in tree.find_all(*_COMPARISONS):
        check(node.this, node.expression)
        check(node.expression, node.this)
    for node in tree.find_all(exp.In):
        for item in node.expressions:
            check(node.this, item)
    for node in tree.find_all(exp.Between):
        check(node.this, node.args.get("low"))
        check(node.this, node.args.get("high"))
    return out


_TEXT_FUNCTIONS = (exp.Lower, exp.Upper, exp.Concat, exp.Substring, exp.Trim, exp.DPipe)
_NUMBER_FUNCTIONS = (exp.Length, exp.Extract, exp.Round, exp.Floor, exp.Ceil, exp.Sqrt, exp.Ln, exp.Exp, exp.Pow,
                     exp.Sign, exp.Abs, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg)
_CONDITIONS = (*_COMPARISONS, exp.And, exp.Or, exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.Boolean)


def _declared_kind(declared: str | None) -> str | None:
    if declared and is_bool_type(declared):
        return "boolean"
    return _kind(declared)


def value_kind(tree: exp.Expression, columns: dict[str, str | None]) -> str | None:
    """What an expression's value is, as far as the declared types tell: 'number',
    'text', 'boolean', 'time', or None (not known: left to the build). A `case`,
    `coalesce` or `if` is its branches' kind when the known ones agree."""
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Literal):
        return "text" if tree.is_string else "number"
    if isinstance(tree, exp.Column):
        return _declared_kind(columns.get(tree.name.lower()))
    if isinstance(tree, (exp.Cast, exp.TryCast)):
        return _declared_kind(tree.to.sql())
    if isinstance(tree, _TEXT_FUNCTIONS):
        return "text"
    if isinstance(tree, _NUMBER_FUNCTIONS):
        return "number"
    if isinstance(tree, _CONDITIONS):
        return "boolean"
    branches = [tree.this] if isinstance(tree, exp.Nullif) else value_branches(tree)
    kinds = {value_kind(b, columns) for b in branches if b is not None} - {None}
    return kinds.pop() if len(kinds) == 1 else None


def value_branches(tree: exp.Expression) -> list[exp.Expression]:
    """The expressions a `case`, `if`, `coalesce`, `greatest` or `least` takes its value
    from ([] for any other node)."""
    if isinstance(tree, exp.Case):
        branches = [i.args.get("true") for i in tree.args.get("ifs") or []] + [tree.args.get("default")]
    elif isinstance(tree, exp.If):
        branches = [tree.args.get("true"), tree.args.get("false")]
    elif isinstance(tree, (exp.Coalesce, exp.Greatest, exp.Least)):
        branches = [tree.this, *(tree.expressions or [])]
    else:
        branches = []
    return [b for b in branches if b is not None]


def mark_mixed_numbers(tree: exp.Expression, columns: dict[str, str | None], mark: str) -> None:
    """Mark (node.meta[mark]) each `case`, `if`, `coalesce`, `greatest` or `least` whose
    values the declared types say are numbers, some whole and some not: ClickHouse finds
    no common type for a bigint and a double (the whole source's build failed), so
    compiler/portable_sql.py makes them doubles there."""
    for node in tree.walk():
        branches = value_branches(node)
        if len(branches) > 1 and all(value_kind(b, columns) == "number" for b in branches) \
                and len({_is_whole(b, columns) for b in branches}) == 2:
            node.meta[mark] = True


_NUMBER_OPERATORS = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv, exp.Neg)
_NEEDS_NUMBER = (exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Sqrt, exp.Ln, exp.Exp, exp.Pow, exp.Sign)
_NEEDS_TEXT = (exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Trim)


def operand_problems(tree: exp.Expression, columns: dict[str, str | None]) -> list[str]:
    """One message per operator or function given a kind of value no warehouse takes
    there, as far as the declared types tell: arithmetic on a text or a boolean (a
    time only adds or subtracts), `abs`/`round`/... of a text, `extract` from a value
    that is no time, `lower`/`length`/... of a number or a time."""
    out: list[str] = []

    def add(problem: str) -> None:
        if problem not in out:
            out.append(problem)

    for node in tree.walk():
        if isinstance(node, _NUMBER_OPERATORS):
            for part in (node.this, node.args.get("expression")):
                kind = value_kind(part, columns) if part is not None else None
                if kind in ("text", "boolean") or kind == "time" and not isinstance(node, (exp.Add, exp.Sub)):
                    add(f"`{node.sql()}` does arithmetic on `{part.sql()}`, which is {_a(kind)}")
        elif isinstance(node, _NEEDS_NUMBER):
            for part in (node.this, node.args.get("expression")):
                kind = value_kind(part, columns) if part is not None else None
                if kind in ("text", "boolean", "time"):
                    add(f"`{node.sql()}` needs a number; `{part.sql()}` is {_a(kind)}")
        elif isinstance(node, exp.Extract):
            # (a difference of times is an interval, which value_kind calls a number)
            kind = value_kind(node.expression, columns)
            if kind in ("text", "boolean") or kind == "number" and isinstance(node.expression, (exp.Column, exp.Literal)):
                add(f"`{node.sql()}` needs a date or time; `{node.expression.sql()}` is {_a(kind)}")
        elif isinstance(node, exp.Cast) and _TEXT_TYPE.fullmatch(_base(node.to.sql())):
            problem = _text_problem(node.this, columns)
            if problem:
                add(f"`{node.sql()}` {problem}")
        elif isinstance(node, (exp.Concat, exp.DPipe)):
            for part in (node.expressions if isinstance(node, exp.Concat) else (node.this, node.expression)):
                problem = _text_problem(part, columns)
                if problem:
                    add(f"`{node.sql()}`: `{part.sql()}` {problem}")
        elif isinstance(node, exp.Cast) and _TIME_TYPE.fullmatch(_base(node.to.sql())) \
                and isinstance(node.this, exp.Literal) and node.this.is_string:
            text = node.this.name.strip()
            if not _is_time(text) or _OFFSET.fullmatch(text):
                add(f"`{node.sql()}`: write a date or a UTC time without an offset, e.g. '2026-01-31 12:00:00' "
                    "(DuckDB and Postgres drop an offset when they cast to timestamp)")
        elif isinstance(node, _NEEDS_TEXT):
            kind = value_kind(node.this, columns)
            if kind in ("number", "boolean", "time"):
                add(f"`{node.sql()}` needs a text; `{node.this.sql()}` is {_a(kind)} (cast it to varchar)")
    return out


def _text_problem(node: exp.Expression, columns: dict[str, str | None]) -> str | None:
    """Why a value written as text differs per warehouse, when it does: a number that may
    have a fraction (DuckDB writes 100.0), a boolean (Postgres writes t), a time (the
    fraction of a second is padded differently)."""
    kind = value_kind(node, columns)
    if kind == "number" and not _is_whole(node, columns):
        return ("writes a number that may have a fraction as text, which differs per warehouse (DuckDB writes 100.0, "
                "Postgres and ClickHouse 100): compare the number, or cast it to bigint first")
    if kind == "boolean":
        return "writes a boolean as text, which differs per warehouse (Postgres writes t, the others true): use a case"
    if kind == "time" and not _is_date(node, columns):
        return ("writes a time as text, which differs per warehouse (ClickHouse pads the fraction of a second): "
                "compare the time, or cast it to date first")
    return None


def _is_date(node: exp.Expression, columns: dict[str, str | None]) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Cast):
        return _base(node.to.sql()) == "date"
    if isinstance(node, exp.Column):
        return _base(columns.get(node.name.lower()) or "") in ("date", "date32")
    return False


def _a(kind: str) -> str:
    return {"time": "a time", "number": "a number", "text": "a text", "boolean": "a boolean"}[kind]

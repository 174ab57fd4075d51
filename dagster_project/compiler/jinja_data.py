"""Data handed to a macro, written into a generated model as one Jinja literal.

A rollup model (compiler/rollup_sql.py) is a `{% set rollup = {...} %}` literal and one
call of macros/metrics_rollup.sql. The literal is built here from plain Python values:

  str             a Jinja string literal (`sql_text.jinja_str`: JSON escaping, braces
                  written as \\u escapes), so text from a metric file is data and is
                  never parsed as template code, whatever it holds
  int, float      a number;  True / False / None: true / false / none
  list, dict      a Jinja list / dict of the above (dict keys are strings)
  JinjaExpr       a Jinja *expression* the compiler wrote itself from escaped pieces
                  (`ref("...")`, `sql_text.fragment_expr(...)`, a `metrics_timestamp`
                  call): evaluated when dbt renders the model

The macros print these values with `{{ ... }}`; what an expression prints is never
rendered again, so a string value reaches the SQL exactly as written."""
from __future__ import annotations

from .sql_text import jinja_str

# a list, or a dict holding lists or dicts, longer than this on one line is written one
# item a line; a dict of plain values (a record) always takes one line
WIDTH = 110


class JinjaExpr(str):
    """Jinja expression code written by the compiler (never metric-file text as is)."""


def jinja_literal(value, indent: int = 0) -> str:
    inline = _inline(value)
    record = isinstance(value, dict) and not any(isinstance(v, (list, dict)) for v in value.values())
    if len(inline) + indent <= WIDTH or record or not isinstance(value, (list, dict)) or not value:
        return inline
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{jinja_str(k)}: {jinja_literal(v, indent + 4)}" for k, v in value.items()]
        open_, close = "{", "}"
    else:
        items = [jinja_literal(v, indent + 4) for v in value]
        open_, close = "[", "]"
    return open_ + "\n" + ",\n".join(pad + item for item in items) + "\n" + " " * indent + close


def _inline(value) -> str:
    if isinstance(value, JinjaExpr):
        return str(value)
    if isinstance(value, str):
        return jinja_str(value)
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{jinja_str(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise TypeError(f"no Jinja literal for {type(value).__name__}")

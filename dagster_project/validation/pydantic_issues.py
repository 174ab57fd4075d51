"""Pydantic errors as file:line issues, shared by metric files, `_config.yml` and
`alerts.yml`. Pydantic's error locations hold union-member names (`str`, `slack`, ...)
that are no key of the file: they are dropped so the message and line name what the
author wrote."""
from __future__ import annotations

import re
import types
import typing

from pydantic import BaseModel, ValidationError

from ..spec.yaml_lines import LocatedYaml
from .issues import ValidationIssue, closest

# union members of the metric models, named in error locations
_TAGS = ("str", "InlineMeasure", "function-after[_start_is_a_date(), date]")


def pydantic_issues(rel: str, located: LocatedYaml, err: ValidationError, model) -> list[ValidationIssue]:
    out = []
    for e in err.errors():
        if (e["type"] == "string_type" and "str" in e["loc"] and isinstance(e.get("input"), dict)
                and _inline_side(model, e["loc"])):
            continue  # a mapping was written (an inline ratio side): its own errors say what is wrong
        if e["type"] == "model_type" and "InlineMeasure" in e["loc"]:
            continue  # neither a name nor a mapping: the `str` member's error says it once (below)
        loc = _written(located.data, tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _TAGS)))
        if loc in located.refused:
            continue  # a value YAML read and Python refused (2026-02-30): said once, as read
        field = ".".join(str(p) for p in loc) or "file"
        if e["type"] == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            msg = f"unknown field `{field}`{closest(str(loc[-1]), fields)}"
        elif e["type"] == "missing":
            msg = f"`{field}` is required"
        elif e["type"] == "union_tag_not_found":
            msg = f"`{field}` needs `{str(e['ctx']['discriminator']).strip(chr(39))}:`"
        elif e["type"] == "union_tag_invalid":
            key = str(e["ctx"]["discriminator"]).strip("'")
            msg = f"`{field}.{key}`: `{e['ctx']['tag']}` is not one of {e['ctx']['expected_tags']}"
            loc = (*loc, key)
        elif e["type"] == "string_type" and "str" in e["loc"] and _inline_side(model, e["loc"]):
            given = e.get("input")
            shown = f" (got {given!r})" if isinstance(given, (str, int, float, bool)) else ""
            msg = f"`{field}`: a metric name or an inline measure ({{aggregation, expression, source, timestamp}}){shown}"
        else:
            given = e.get("input")
            # never echo what may be a secret: a URL (a Slack one is a credential, others carry
            # tokens), a header's value, a user name
            secret = bool(loc) and (str(loc[-1]) in ("secret", "password", "url", "username", "headers")
                                    or len(loc) > 1 and str(loc[-2]) == "headers")
            text = _plain(e["msg"])
            # a validator's own message that already shows the value ("..., got 'tomorrow'") says it once
            shown = f" (got {given!r})" if (isinstance(given, (str, int, float, bool)) and not secret
                                            and f"got {given!r}" not in text) else ""
            if isinstance(given, bool) and e["type"] == "string_type":
                # `name: no` or `owner: on`: YAML 1.1 reads the bare word as a boolean
                shown = f" (got the boolean {str(given).lower()}: YAML reads a bare yes/no/on/off/true/false so; quote it)"
            msg = f"`{field}`: {text}{shown}" if loc else f"the file: {text}{shown}"
        out.append(ValidationIssue(rel, located.line_of(loc), msg, "schema"))
    return out


def _plain(message: str) -> str:
    """pydantic's message without its class names ("a valid dictionary or instance of
    AnomalySpec" -> "a mapping of fields") or its "Value error, " prefix."""
    message = re.sub(r"a valid dictionary or instance of \w+", "a mapping of fields (key: value lines)", message)
    return message.removeprefix("Value error, ")


def _inline_side(model, loc: tuple) -> bool:
    """Whether the field at `loc` takes a metric name or an inline measure (a ratio side)."""
    field = loc[0] if loc and isinstance(loc[0], str) else None
    annotation = model.model_fields[field].annotation if field in getattr(model, "model_fields", {}) else None
    return any(getattr(m, "__name__", "") == "InlineMeasure" for m in _expand(annotation))


def _written(data, loc: tuple) -> tuple:
    """The part of `loc` that exists in the file, plus a last key pydantic found missing."""
    kept: list = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(data, dict) and i == len(loc) - 1:
            pass  # a missing key: named, not located
        else:
            continue  # a union member's name (`slack`, `list[str]`): not in the file
        kept.append(part)
    return tuple(kept)


def _expand(annotation) -> list:
    """Models (and `dict` markers) an annotation holds, through Optional, list, Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        return [("dict", args[1])]
    if origin is typing.Annotated:
        return _expand(args[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        return [m for a in args for m in _expand(a)]
    return []


def _fields_at(model, loc) -> list[str]:
    shapes = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt = []
        for shape in shapes:
            if isinstance(shape, tuple):
                nxt += _expand(shape[1])  # `part` is a key of a mapping of models
            elif part in shape.model_fields:
                nxt += _expand(shape.model_fields[part].annotation)
        shapes = nxt
    names: list[str] = []
    for shape in shapes:
        if not isinstance(shape, tuple):
            names += [f.alias or n for n, f in shape.model_fields.items() if (f.alias or n) not in names]
    return names

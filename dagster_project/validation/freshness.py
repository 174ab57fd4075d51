"""dbt source freshness declarations (`warn_after` / `error_after`, `loaded_at_field`):
read once here for `metrics validate` (validation/catalog.py) and for the pipeline alerts
(alerting/pipeline.py), so an allowance validate accepts is one the alerts can check.

As dbt reads them: a table's `freshness` is its source's with the table's keys over it,
threshold by threshold (`warn_after: {count: 6}` under a source's `{count: 3, period:
hour}` is 6 hours; a key written as null keeps the source's value); `freshness: null`
or a threshold written as null switches it off, and so does one left without a count or
a period. A count of 0 is stale at once, as in dbt."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_PERIOD = {"minute": 60, "hour": 3600, "day": 86400}
THRESHOLDS = ("warn_after", "error_after")
MAX_ALLOWANCE = dt.timedelta(days=3653)  # ten years: a larger one is a typo (and past it timedelta overflows)


def freshness_config(node: dict) -> dict:
    """Freshness settings of a source or table: under `config:` (dbt >= 1.10) or, the
    older spelling, at the top level."""
    config = node.get("config") if isinstance(node.get("config"), dict) else {}
    out = {}
    for key in ("freshness", "loaded_at_field"):
        if key in config:
            out[key] = config[key]
        elif key in node:
            out[key] = node[key]
    return out


def _rendered(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def block_problem(block: object) -> str | None:
    """What is wrong with a `warn_after` / `error_after` (as written, or merged), or None.
    A value dbt renders (`count: "{{ var('h') }}"`) is not judged here."""
    if block is None:
        return None
    if not isinstance(block, dict):
        return "is a mapping {count: N, period: minute|hour|day}"
    count, period = block.get("count"), block.get("period")
    if _rendered(count) or _rendered(period):
        return None
    if period is not None and period not in _PERIOD:
        return f"period is minute, hour or day (got `{period}`)"
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        return f"count is a whole number, 0 or more (got `{count}`)"
    if count is not None and period is not None and count > MAX_ALLOWANCE.total_seconds() // _PERIOD[period]:
        return f"count of {period}s is at most {int(MAX_ALLOWANCE.total_seconds() // _PERIOD[period]):,} (ten years)"
    return None


@dataclass(frozen=True)
class TableFreshness:
    warn_after: dt.timedelta | None
    error_after: dt.timedelta | None
    loaded_at_field: str
    problems: tuple[tuple[str, str], ...]  # (threshold, why) of each one the alerts cannot read


def table_freshness(source: dict, table: dict) -> TableFreshness | None:
    """The table's thresholds as dbt merges them (None: no freshness declared or switched
    off): key by key, the last value that is not null wins (a table's `count: null` keeps
    its source's count); a threshold written as null is off."""
    outer, inner = freshness_config(source), freshness_config(table)
    field = str(inner.get("loaded_at_field") or outer.get("loaded_at_field") or "")
    if "freshness" in inner and inner["freshness"] is None:
        return None
    parts = [f for f in (outer.get("freshness"), inner.get("freshness")) if isinstance(f, dict)]
    if not parts:
        return None
    problems, after = [], {}
    for key in THRESHOLDS:
        merged: dict | None = {}
        for part in parts:
            if key not in part:
                continue
            block = part[key]
            if block is None:
                merged = None
            elif isinstance(block, dict):
                merged = {**(merged or {}), **{k: v for k, v in block.items() if v is not None}}
            else:
                merged = block  # (block_problem says what it should be)
        why = block_problem(merged)
        count, period = (merged.get("count"), merged.get("period")) if isinstance(merged, dict) else (None, None)
        if not why and (_rendered(count) or _rendered(period)):
            why = "its count or period is rendered by dbt (Jinja): the alerts cannot read it"
        if why:
            problems.append((key, why))
            after[key] = None
            continue
        after[key] = dt.timedelta(seconds=count * _PERIOD[period]) if count is not None and period else None
    return TableFreshness(after["warn_after"], after["error_after"], field, tuple(problems))

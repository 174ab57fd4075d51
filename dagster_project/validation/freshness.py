"""dbt source freshness declarations (`warn_after` / `error_after`, `loaded_at_field`):
read once here for `metrics validate` (validation/catalog.py) and for the pipeline alerts
(alerting/pipeline.py), so an allowance validate accepts is one the alerts can check.

As dbt reads them: a table's `freshness` is its source's with the table's keys over it,
threshold by threshold (`warn_after: {count: 6}` under a source's `{count: 3, period:
hour}` is 6 hours); `freshness: null` switches it off, and so does a threshold whose
count or period is null."""
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


def block_problem(block: object) -> str | None:
    """What is wrong with one written `warn_after` / `error_after` (before merging), or None."""
    if block is None:
        return None
    if not isinstance(block, dict):
        return "is a mapping {count: N, period: minute|hour|day}"
    count, period = block.get("count"), block.get("period")
    if period is not None and period not in _PERIOD:
        return f"period is minute, hour or day (got `{period}`)"
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count <= 0):
        return f"count is a whole number above 0 (got `{count}`)"
    if count is not None and period is not None and count > MAX_ALLOWANCE.total_seconds() // _PERIOD[period]:
        return f"count of {period}s is at most {int(MAX_ALLOWANCE.total_seconds() // _PERIOD[period]):,} (ten years)"
    return None


@dataclass(frozen=True)
class TableFreshness:
    warn_after: dt.timedelta | None
    error_after: dt.timedelta | None
    loaded_at_field: str
    problems: tuple[tuple[str, str], ...]  # (threshold, why) of each written one that cannot be read


def table_freshness(source: dict, table: dict) -> TableFreshness | None:
    """The table's thresholds as dbt merges them (None: no freshness declared or switched off)."""
    outer, inner = freshness_config(source), freshness_config(table)
    field = str(inner.get("loaded_at_field") or outer.get("loaded_at_field") or "")
    if "freshness" in inner and inner["freshness"] is None:
        return None
    parts = [f for f in (outer.get("freshness"), inner.get("freshness")) if isinstance(f, dict)]
    if not parts:
        return None
    problems, after = [], {}
    for key in THRESHOLDS:
        written = [p[key] for p in parts if key in p]
        bad = next((why for why in map(block_problem, written) if why), None)
        if bad:
            problems.append((key, bad))
            after[key] = None
            continue
        merged: dict = {}
        for block in written:
            merged = {} if block is None else {**merged, **block}
        count, period = merged.get("count"), merged.get("period")
        after[key] = dt.timedelta(seconds=count * _PERIOD[period]) if count and period else None
    return TableFreshness(after["warn_after"], after["error_after"], field, tuple(problems))

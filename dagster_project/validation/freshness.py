"""dbt source freshness declarations (`warn_after` / `error_after`, `loaded_at_field`):
read once here for `metrics validate` (validation/catalog.py) and for the pipeline alerts
(alerting/pipeline.py), so an allowance validate accepts is one the alerts can check."""
from __future__ import annotations

import datetime as dt

_PERIOD = {"minute": 60, "hour": 3600, "day": 86400}


MAX_ALLOWANCE = dt.timedelta(days=3653)  # ten years: a larger one is a typo (and past it timedelta overflows)


def allowance(block: object) -> tuple[dt.timedelta | None, str | None]:
    """A `warn_after` / `error_after` block as (allowance, None), (None, None) when not
    set, or (None, why) when it cannot be read: the declaration is then not checked, and
    `metrics validate` and every evaluation say so (a typo turned monitoring off unsaid)."""
    if block is None or block == {}:
        return None, None
    if not isinstance(block, dict):
        return None, "is a mapping {count: N, period: minute|hour|day}"
    count, period = block.get("count"), block.get("period")
    if count is None and period is None:  # dbt's way of switching an inherited one off
        return None, None
    if period not in _PERIOD:
        return None, f"period is minute, hour or day (got `{period}`)"
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        return None, f"count is a whole number above 0 (got `{count}`)"
    if count > MAX_ALLOWANCE.total_seconds() // _PERIOD[period]:
        return None, f"count of {period}s is at most {int(MAX_ALLOWANCE.total_seconds() // _PERIOD[period]):,} (ten years)"
    return dt.timedelta(seconds=count * _PERIOD[period]), None


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

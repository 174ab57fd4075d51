"""The aggregates of a rollup: the columns of its `aggregated` CTE (one row per bucket and
slice with every metric's aggregates), as data for macros/metrics_rollup_aggregated.sql,
which writes that CTE in one of two forms:

Direct: one GROUP BY over the raw rows, each filter inline in FILTER (WHERE ...) / -If
(measured 18% faster on DuckDB than projecting it as a boolean column first).
Keyed, when every filter reads only categorical columns (`keys`): the raw rows are
grouped by those columns too with unfiltered partial aggregates, and the filters are
applied to those few partial rows. Each row then costs one update of a handful of
aggregates instead of one per metric and filter (bench/bench_rollups.py). Both forms are
written; the engine picks one (macros/metrics_keyed_rollup.sql)."""
from __future__ import annotations

from typing import Callable

# Aggregates that can be computed from partial aggregates: the partial kind and how the
# partials are combined (a count is the sum of partial counts).
_COMBINE = {"count": "sum", "sum": "sum", "min": "min", "max": "max"}


def keyable(metric, categorical: frozenset[str]) -> bool:
    """Whether `metric` can be computed from partials grouped by its filter's columns:
    a decomposable aggregate (DuckDB's long-form distinct counts read raw rows apart)
    filtered on columns with few, known values."""
    meas = metric.measure
    columns = set(meas.filter.columns) if meas.filter is not None else set()
    return meas.aggregation in ("count", "sum", "avg", "min", "max", "count_distinct") and columns <= categorical


class Aggregates:
    """Every aggregate one rollup computes, each once: metrics that share a measured
    column, an aggregation and a filter share one output column, named (by `name`)
    after the first metric that needs it.

    An aggregate is {"column", "kind", "value": measured column ('' for count(*)),
    "filter": a Jinja expression for the rows it reads ('' for all)} plus
    "percentile" / "order_by" where its kind needs them. Distinct counts are kept apart
    ({"column", "key", "value", "filter"}): on DuckDB they come from a long-form GROUP BY
    in which `key` tells the distinct metrics apart (macros/metrics_distinct_long_form.sql)."""

    def __init__(self, name: Callable[[str, str], str]):
        self._name = name
        self._by_key: dict[tuple, dict] = {}
        self.distinct: list[dict] = []

    def add(self, metric: str, kind: str, value: str, flag: str, **extra) -> str:
        key = (kind, value, flag, tuple(extra.items()))
        if key not in self._by_key:
            self._by_key[key] = {"column": self._name(metric, kind), "kind": kind, "value": value, "filter": flag, **extra}
        return self._by_key[key]["column"]

    def add_distinct(self, metric: str, value: str, flag: str) -> dict:
        for d in self.distinct:
            if d["value"] == value and d["filter"] == flag:
                return d
        d = {"column": self._name(metric, "distinct"), "key": len(self.distinct) + 1, "value": value, "filter": flag}
        self.distinct.append(d)
        return d

    def data(self, keys: list[str]) -> dict:
        """The `aggregated` part of a rollup's data. With `keys` (the keyed form is
        possible), each aggregate also names the partial it is combined from and how
        ("combine"; "empty": its value when no partial row matched), and "partials"
        lists the unfiltered partial aggregates, one per (kind, measured column)."""
        aggregates = [dict(a) for a in self._by_key.values()]
        out: dict = {"key_columns": keys, "aggregates": aggregates, "distinct": self.distinct}
        if keys:
            partials: dict[tuple[str, str], dict] = {}
            for a in aggregates:
                # a partial is named after the first aggregate combined from it
                p = partials.setdefault((a["kind"], a["value"]),
                                        {"column": f"{a['column']}__partial", "kind": a["kind"], "value": a["value"]})
                a.update(partial=p["column"], combine=_COMBINE[a["kind"]])
                if a["kind"] == "count":
                    a["empty"] = "0"
            out["partials"] = list(partials.values())
        return out

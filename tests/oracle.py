"""An independent oracle: the expected series computed with pandas straight from the raw
rows, following the rollup semantics in DESIGN.md. It shares no code with the compiler."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

GRAINS = ("hour", "day", "week", "month")


def bucket(ts: pd.Series, grain: str) -> pd.Series:
    if grain == "hour":
        return ts.dt.floor("h")
    day = ts.dt.floor("D")
    if grain == "day":
        return day
    if grain == "week":
        return day - pd.to_timedelta(day.dt.day_of_week.astype("int64"), unit="D")
    return day - pd.to_timedelta((day.dt.day - 1).astype("int64"), unit="D")


def next_bucket(b: pd.Timestamp, grain: str) -> pd.Timestamp:
    return b + {"hour": pd.DateOffset(hours=1), "day": pd.DateOffset(days=1),
                "week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1)}[grain]


def buckets_between(first: pd.Timestamp, end_exclusive: pd.Timestamp, grain: str) -> list[pd.Timestamp]:
    out, b = [], first
    while b < end_exclusive:
        out.append(b)
        b = next_bucket(b, grain)
    return out


@dataclass
class Simple:
    name: str
    table: str
    ts: str
    agg: str
    value: str | None = None
    where: Callable[[pd.DataFrame], pd.Series] | None = None
    dims: tuple[str, ...] = ()
    p: float | None = None

    @property
    def empty(self):
        return 0.0 if self.agg in ("count", "count_distinct", "sum") else None


@dataclass
class Ratio:
    name: str
    num: str
    den: str
    dims: tuple[str, ...] = ()
    empty = None


@dataclass
class Derived:
    name: str
    inputs: tuple[str, ...]
    fn: Callable[..., float | None]
    dims: tuple[str, ...] = ()
    empty: float | None = field(default=None)


def _agg(rows: pd.DataFrame, m: Simple) -> float | None:
    if m.agg == "count":
        return float(len(rows) if m.value is None else rows[m.value].notna().sum())
    x = rows[m.value].dropna()
    if m.agg == "sum":
        return float(x.sum())
    if m.agg == "count_distinct":
        return float(x.nunique())
    if x.empty:
        return None
    if m.agg == "avg":
        return float(x.sum() / len(x))
    if m.agg == "min":
        return float(x.min())
    if m.agg == "max":
        return float(x.max())
    if m.agg == "percentile":
        return float(np.quantile(x.to_numpy(dtype=float), m.p, method="linear"))
    if m.agg == "latest":
        r = rows[rows[m.value].notna()].sort_values([m.ts, m.value])
        return float(r[m.value].iloc[-1])
    raise ValueError(m.agg)


def simple_series(raw: dict[str, pd.DataFrame], m: Simple, grain: str, first: pd.Timestamp, end: pd.Timestamp) -> dict:
    """{(bucket, dimension, value): number}: dense total, sparse slices."""
    df = raw[m.table]
    df = df[df[m.ts].notna()].copy()
    if m.where is not None:
        df = df[m.where(df).fillna(False).astype(bool)]
    df["b"] = bucket(df[m.ts], grain)
    df = df[(df["b"] >= first) & (df["b"] < end)]
    out = {}
    groups = dict(tuple(df.groupby("b")))
    for b in buckets_between(first, end, grain):
        rows = groups.get(b)
        if rows is None or rows.empty:
            out[(b, "", "")] = m.empty
        elif m.agg == "latest" and m.dims:
            # the sum of each first-dimension value's latest value; a gap when none has one
            latest = [v for _, g in rows.groupby(rows[m.dims[0]].fillna("(null)")) if (v := _agg(g, m)) is not None]
            out[(b, "", "")] = float(sum(latest)) if latest else None
        else:
            out[(b, "", "")] = _agg(rows, m)
    for d in m.dims:
        keyed = df.assign(k=df[d].astype(object).where(df[d].notna(), "(null)").astype(str))
        for (b, k), rows in keyed.groupby(["b", "k"]):
            # stored sparse: only where a row (with a non-NULL measured value) exists
            if m.value is None or rows[m.value].notna().any():
                out[(b, d, k)] = _agg(rows, m)
    return out


def combined_series(inputs: list[dict], fills: list, dims: tuple[str, ...], first: pd.Timestamp, fn) -> dict:
    keys = set()
    for series in inputs:
        keys |= {k for k in series if (k[1] == "" or k[1] in dims) and k[0] >= first}
    out = {}
    for k in keys:
        vals = [s.get(k, f) for s, f in zip(inputs, fills)]
        out[k] = fn(*vals)
    return out


def ratio_fn(n, d):
    if n is None or d is None or d == 0:
        return None
    return n / d

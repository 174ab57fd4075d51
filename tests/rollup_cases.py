"""The synthetic data and metric set the DuckDB (and later cross-warehouse) rollup tests
share: random rows plus rows placed on the edges that are easy to get wrong (ISO week
and month boundaries, a leap day, an empty day, ties, NULL dimensions, a bucket where a
ratio's denominator is zero)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dagster_project.paths import REPO_ROOT

from .oracle import Derived, Ratio, Simple, combined_series, ratio_fn, simple_series

START = dt.date(2024, 2, 20)
WINDOW = (dt.date(2024, 2, 1), dt.date(2024, 4, 1))
EMPTY_DAY = dt.date(2024, 3, 6)

CONFIG = "start: 2024-02-20\ngrains: [hour, day, week, month]\n"

METRICS = {
    "events/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "events/likes.yml": "name: likes\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Like'\"\ndimensions: [entity_type]\n",
    "events/reactions_net.yml": "name: reactions_net\nsource: stg_entity_events\ntimestamp: created_at\naggregation: sum\nexpression: metric_value\nfilter: \"metric_type in ('ReactionLike', 'ReactionHeart')\"\ndimensions: [entity_category]\n",
    "events/active_users.yml": "name: active_users\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\nexpression: user_id\ndimensions: [entity_type, entity_category]\n",
    "events/model_downloads.yml": "name: model_downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Download' and entity_type = 'model'\"\ndimensions: [entity_type]\n",
    "events/views_late_start.yml": "name: views_late_start\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'View'\"\nstart: 2024-03-01\n",
    "events/downloads_per_user.yml": "name: downloads_per_user\nkind: ratio\nnumerator: downloads\ndenominator: {source: stg_entity_events, timestamp: created_at, aggregation: count_distinct, expression: user_id}\n",
    "events/likes_per_download.yml": "name: likes_per_download\nkind: ratio\nnumerator: likes\ndenominator: downloads\n",
    "orders/revenue.yml": "name: revenue\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\nexpression: amount\ndimensions: [country]\n",
    "orders/refunds.yml": "name: refunds\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\nexpression: refund_amount\nfilter: refunded\ndimensions: [country]\n",
    "orders/orders.yml": "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\ndimensions: [country]\n",
    "orders/avg_latency.yml": "name: avg_latency\nsource: stg_orders\ntimestamp: ordered_at\naggregation: avg\nexpression: latency_ms\ndimensions: [country]\n",
    "orders/min_amount.yml": "name: min_amount\nsource: stg_orders\ntimestamp: ordered_at\naggregation: min\nexpression: amount\n",
    "orders/max_amount.yml": "name: max_amount\nsource: stg_orders\ntimestamp: ordered_at\naggregation: max\nexpression: amount\ndimensions: [country]\n",
    "orders/p90_latency.yml": "name: p90_latency\nsource: stg_orders\ntimestamp: ordered_at\naggregation: percentile\npercentile: 0.9\nexpression: latency_ms\ndimensions: [country]\n",
    "orders/last_order_amount.yml": "name: last_order_amount\nsource: stg_orders\ntimestamp: ordered_at\naggregation: latest\nexpression: amount\n",
    "orders/net_revenue.yml": "name: net_revenue\nkind: derived\nexpression: revenue - refunds\n",
    "orders/revenue_per_download.yml": "name: revenue_per_download\nkind: derived\nexpression: revenue / downloads\n",
    "orders/aov.yml": "name: aov\nkind: ratio\nnumerator: revenue\ndenominator: orders\n",
    "social/followers.yml": "name: followers\nsource: stg_follower_snapshots\ntimestamp: observed_at\naggregation: latest\nexpression: followers\ndimensions: [user_id]\n",
}


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def make_raw(seed: int = 11) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    lo, hi = pd.Timestamp("2024-02-20"), pd.Timestamp("2024-03-13")
    n = 3000
    secs = rng.uniform(0, (hi - lo).total_seconds(), size=n)
    created = lo + pd.to_timedelta(np.round(secs, 3), unit="s")
    created = created[(created < pd.Timestamp(EMPTY_DAY)) | (created >= pd.Timestamp(EMPTY_DAY) + pd.Timedelta(days=1))]
    n = len(created)
    types = rng.choice(np.array(["model", "dataset", "space", "mystery", None], dtype=object), size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    mtypes = rng.choice(["Download", "Like", "ReactionLike", "ReactionHeart", "View"], size=n, p=[0.45, 0.15, 0.15, 0.05, 0.2])
    values = np.where(np.isin(mtypes, ["ReactionLike", "ReactionHeart"]) & (rng.random(n) < 0.3), -1.0, 1.0)
    events = pd.DataFrame({
        "event_id": np.arange(n, dtype=np.int64), "entity_type": types,
        "entity_id": [f"e{i}" for i in rng.integers(0, 300, size=n)],
        "user_id": [f"u{i}" for i in rng.integers(0, 60, size=n)],
        "metric_type": mtypes, "metric_value": values, "created_at": created,
    })
    edges = [  # (created_at, entity_type, user, metric_type, value)
        ("2024-02-29 00:00:00", "model", "u1", "Download", 1.0),      # leap day
        ("2024-02-29 23:59:59.999", "dataset", "u2", "Download", 1.0),  # last instant of February
        ("2024-03-01 00:00:00", "dataset", "u2", "Download", 1.0),      # first instant of March
        ("2024-03-03 23:59:59", "space", "u3", "Like", 1.0),           # Sunday: last instant of ISO week
        ("2024-03-04 00:00:00", "space", "u3", "Like", 1.0),           # Monday: first instant of the next
        ("2024-03-12 23:30:00", "model", "u4", "Like", 1.0),           # an hour with a like and no download
    ]
    extra = pd.DataFrame([
        {"event_id": 100_000 + i, "entity_type": t, "entity_id": "edge", "user_id": u, "metric_type": mt,
         "metric_value": v, "created_at": _ts(ts)} for i, (ts, t, u, mt, v) in enumerate(edges)])
    events = pd.concat([events, extra], ignore_index=True)
    events = events[~((events.created_at >= pd.Timestamp("2024-03-12 23:00")) & (events.metric_type == "Download"))]

    m = 700
    osecs = rng.uniform(0, (hi - lo).total_seconds(), size=m)
    ordered = lo + pd.to_timedelta(np.round(osecs), unit="s")
    latency = np.round(rng.gamma(3.0, 50.0, size=m), 1).astype(object)
    latency[rng.random(m) < 0.05] = None
    orders = pd.DataFrame({
        "order_id": np.arange(m, dtype=np.int64),
        "user_id": [f"u{i}" for i in rng.integers(0, 60, size=m)],
        "country": rng.choice(np.array(["US", "DE", "FR", None], dtype=object), size=m, p=[0.5, 0.25, 0.2, 0.05]),
        "ordered_at": ordered,
        "amount": np.round(rng.lognormal(3.0, 0.7, size=m), 2),
        "refunded": rng.random(m) < 0.1,
        "latency_ms": pd.array(latency, dtype="Float64"),
    })
    orders = orders[~((orders.ordered_at >= pd.Timestamp(EMPTY_DAY)) & (orders.ordered_at < pd.Timestamp(EMPTY_DAY) + pd.Timedelta(days=1)))]
    snaps = []
    for u in range(6):
        for k in range(int(rng.integers(20, 60))):
            t = lo + pd.Timedelta(seconds=int(rng.uniform(0, (hi - lo).total_seconds())))
            snaps.append((f"u{u}", t, int(rng.integers(10, 500))))
    snaps += [("u0", _ts("2024-03-02 10:00:00"), 7), ("u0", _ts("2024-03-02 10:00:00"), 9)]  # tie: larger wins
    followers = pd.DataFrame(snaps, columns=["user_id", "observed_at", "followers"])
    followers = followers[followers.observed_at.dt.date != EMPTY_DAY]
    return {"entity_events": events.reset_index(drop=True), "orders": orders.reset_index(drop=True), "follower_snapshots": followers}


def staged(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """What the staging views return, recomputed here from the seed CSV and raw rows."""
    seed = pd.read_csv(REPO_ROOT / "seeds" / "entity_types.csv")
    ev = raw["entity_events"].merge(seed, on="entity_type", how="left")
    ev["entity_category"] = ev["entity_category"].fillna("other")
    orders = raw["orders"].copy()
    orders["refund_amount"] = np.where(orders["refunded"], orders["amount"], 0.0)
    return {"stg_entity_events": ev, "stg_orders": orders, "stg_follower_snapshots": raw["follower_snapshots"]}


def oracle_metrics() -> dict:
    mt = lambda *v: (lambda d: d["metric_type"].isin(v))  # noqa: E731
    E, O, F = "stg_entity_events", "stg_orders", "stg_follower_snapshots"
    simple = [
        Simple("downloads", E, "created_at", "count", where=mt("Download"), dims=("entity_type",)),
        Simple("likes", E, "created_at", "count", where=mt("Like"), dims=("entity_type",)),
        Simple("reactions_net", E, "created_at", "sum", "metric_value", where=mt("ReactionLike", "ReactionHeart"), dims=("entity_category",)),
        Simple("active_users", E, "created_at", "count_distinct", "user_id", dims=("entity_type", "entity_category")),
        # the filter reads a column that is also a dimension
        Simple("model_downloads", E, "created_at", "count", where=lambda d: (d["metric_type"] == "Download") & (d["entity_type"] == "model"), dims=("entity_type",)),
        Simple("views_late_start", E, "created_at", "count", where=mt("View")),
        # an inline ratio side takes the named side's dimensions where its source has them
        Simple("downloads_per_user__denominator", E, "created_at", "count_distinct", "user_id", dims=("entity_type",)),
        Simple("revenue", O, "ordered_at", "sum", "amount", dims=("country",)),
        Simple("refunds", O, "ordered_at", "sum", "refund_amount", where=lambda d: d["refunded"], dims=("country",)),
        Simple("orders", O, "ordered_at", "count", dims=("country",)),
        Simple("avg_latency", O, "ordered_at", "avg", "latency_ms", dims=("country",)),
        Simple("min_amount", O, "ordered_at", "min", "amount"),
        Simple("max_amount", O, "ordered_at", "max", "amount", dims=("country",)),
        Simple("p90_latency", O, "ordered_at", "percentile", "latency_ms", dims=("country",), p=0.9),
        Simple("last_order_amount", O, "ordered_at", "latest", "amount"),
        Simple("followers", F, "observed_at", "latest", "followers", dims=("user_id",)),
    ]
    combined = [
        Ratio("downloads_per_user", "downloads", "downloads_per_user__denominator", dims=("entity_type",)),
        Ratio("likes_per_download", "likes", "downloads", dims=("entity_type",)),
        Ratio("aov", "revenue", "orders", dims=("country",)),
        Derived("net_revenue", ("revenue", "refunds"), lambda a, b: None if a is None or b is None else a - b, dims=("country",), empty=0.0),
        Derived("revenue_per_download", ("revenue", "downloads"), ratio_fn),
    ]
    return {"simple": simple, "combined": combined, "starts": {"views_late_start": dt.date(2024, 3, 1)}}


def expected(raw: dict[str, pd.DataFrame], grain: str, window_end: dt.date = WINDOW[1]) -> dict[str, dict]:
    """metric -> {(bucket, dimension, dimension_value): value} for the whole window."""
    from .oracle import bucket
    data = staged(raw)
    defs = oracle_metrics()
    end_day = pd.Timestamp(window_end)
    end = bucket(pd.Series([end_day]), grain).iloc[0]
    if end < end_day:
        from .oracle import next_bucket
        end = next_bucket(end, grain)
    out: dict[str, dict] = {}
    empties: dict[str, float | None] = {}
    for m in defs["simple"]:
        start = defs["starts"].get(m.name, START)
        first = bucket(pd.Series([pd.Timestamp(start)]), grain).iloc[0]
        out[m.name] = simple_series(data, m, grain, first, end)
        empties[m.name] = m.empty
    for m in defs["combined"]:
        first = bucket(pd.Series([pd.Timestamp(START)]), grain).iloc[0]
        inputs = [m.num, m.den] if isinstance(m, Ratio) else list(m.inputs)
        fn = ratio_fn if isinstance(m, Ratio) else m.fn
        out[m.name] = combined_series([out[i] for i in inputs], [empties[i] for i in inputs], m.dims, first, fn)
        empties[m.name] = m.empty
    out.pop("downloads_per_user__denominator")
    return out

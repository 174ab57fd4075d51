"""The keyed rollup form (compiler/rollup_sql.py): when every filter of a rollup reads
only categorical columns, rows are first grouped by those columns and the filters are
applied to the partial aggregates. Checked against the pandas oracle on every target,
with the filter shapes whose NULL handling is easy to get wrong (negation, NOT IN,
IS NULL, a filter on a dimension column, a metric starting late)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.dbt_runner import environ

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, compile_and_build, load_raw, series_table
from .oracle import Simple, bucket, simple_series

pytestmark = pytest.mark.dbt

E, O = "source: stg_entity_events\ntimestamp: created_at\n", "source: stg_orders\ntimestamp: ordered_at\n"
METRICS = {
    "e/downloads.yml": f"name: downloads\n{E}aggregation: count\nfilter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "e/not_views.yml": f"name: not_views\n{E}aggregation: count\nfilter: \"metric_type <> 'View'\"\ndimensions: [entity_type, entity_category]\n",
    "e/untyped.yml": f"name: untyped\n{E}aggregation: count\nfilter: \"metric_type is null\"\n",
    "e/no_reactions.yml": f"name: no_reactions\n{E}aggregation: sum\nexpression: metric_value\nfilter: \"not (metric_type in ('ReactionLike', 'ReactionHeart'))\"\ndimensions: [entity_type]\n",
    "e/model_value_avg.yml": f"name: model_value_avg\n{E}aggregation: avg\nexpression: metric_value\nfilter: \"entity_type = 'model' or metric_type = 'Like'\"\ndimensions: [entity_type]\n",
    "e/reaction_min.yml": f"name: reaction_min\n{E}aggregation: min\nexpression: metric_value\nfilter: \"metric_type in ('ReactionLike', 'ReactionHeart')\"\ndimensions: [entity_category]\n",
    "e/events.yml": f"name: events\n{E}aggregation: count\nstart: 2024-03-01\n",
    "o/refunds.yml": f"name: refunds\n{O}aggregation: sum\nexpression: amount\nfilter: refunded\ndimensions: [country]\n",
    "o/kept_latency.yml": f"name: kept_latency\n{O}aggregation: avg\nexpression: latency_ms\nfilter: not refunded\ndimensions: [country]\n",
    "o/kept_latency_n.yml": f"name: kept_latency_n\n{O}aggregation: count\nexpression: latency_ms\nfilter: not refunded\n",
    "o/max_kept.yml": f"name: max_kept\n{O}aggregation: max\nexpression: amount\nfilter: not refunded\ndimensions: [country]\n",
}
CONFIG = "start: 2024-02-20\ngrains: [hour, day, week]\n"


def _oracle() -> list[tuple[Simple, dt.date]]:
    mt = lambda d: d["metric_type"]  # noqa: E731
    start = cases.START
    return [
        (Simple("downloads", "stg_entity_events", "created_at", "count", where=lambda d: mt(d) == "Download", dims=("entity_type",)), start),
        # SQL: NULL <> 'View' is not true, so untyped rows are not counted
        (Simple("not_views", "stg_entity_events", "created_at", "count", where=lambda d: mt(d).notna() & (mt(d) != "View"),
                dims=("entity_type", "entity_category")), start),
        (Simple("untyped", "stg_entity_events", "created_at", "count", where=lambda d: mt(d).isna()), start),
        (Simple("no_reactions", "stg_entity_events", "created_at", "sum", "metric_value",
                where=lambda d: mt(d).notna() & ~mt(d).isin(["ReactionLike", "ReactionHeart"]), dims=("entity_type",)), start),
        (Simple("model_value_avg", "stg_entity_events", "created_at", "avg", "metric_value",
                where=lambda d: (d["entity_type"] == "model") | (mt(d) == "Like"), dims=("entity_type",)), start),
        (Simple("reaction_min", "stg_entity_events", "created_at", "min", "metric_value",
                where=lambda d: mt(d).isin(["ReactionLike", "ReactionHeart"]), dims=("entity_category",)), start),
        (Simple("events", "stg_entity_events", "created_at", "count"), dt.date(2024, 3, 1)),
        (Simple("refunds", "stg_orders", "ordered_at", "sum", "amount", where=lambda d: d["refunded"], dims=("country",)), start),
        (Simple("kept_latency", "stg_orders", "ordered_at", "avg", "latency_ms", where=lambda d: ~d["refunded"], dims=("country",)), start),
        (Simple("kept_latency_n", "stg_orders", "ordered_at", "count", "latency_ms", where=lambda d: ~d["refunded"]), start),
        (Simple("max_kept", "stg_orders", "ordered_at", "max", "amount", where=lambda d: ~d["refunded"], dims=("country",)), start),
    ]


def _raw() -> dict[str, pd.DataFrame]:
    raw = cases.make_raw(seed=5)
    events = raw["entity_events"].copy()
    rng = np.random.default_rng(3)
    events["metric_type"] = events["metric_type"].astype(object)
    events.loc[rng.random(len(events)) < 0.05, "metric_type"] = None  # rows no equality filter matches
    raw["entity_events"] = events
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    """Built in the keyed form on every target (only DuckDB uses it by default; the
    one-pass form is what tests/test_rollups.py checks)."""
    paths = make_project(tmp_path_factory.mktemp(f"keyed_{target}"), METRICS, CONFIG)
    wh = Warehouse(target, paths)
    raw = _raw()
    load_raw(wh, raw)
    with environ({"METRICS_ROLLUP_FORM": "keyed"}):
        compile_and_build(paths, target, cases.WINDOW)
    return paths, wh, raw


def test_the_keyed_form_is_what_was_built(built):
    paths, _, _ = built
    for source in ("stg_entity_events", "stg_orders"):
        sql = next((paths.dbt_project_dir / "target" / "compiled").rglob(f"rollup_{source}__by_*__day.sql")).read_text()
        assert "partials as (" in sql and "from partials" in sql, source


@pytest.mark.parametrize("grain", ["hour", "day", "week"])
def test_keyed_rollups_match_the_pandas_oracle(built, grain):
    _, wh, raw = built
    data = cases.staged(raw)
    table = series_table(wh, grain)
    end = bucket(pd.Series([pd.Timestamp(cases.WINDOW[1])]), grain).iloc[0]
    if end < pd.Timestamp(cases.WINDOW[1]):
        from .oracle import next_bucket
        end = next_bucket(end, grain)
    for m, start in _oracle():
        first = bucket(pd.Series([pd.Timestamp(start)]), grain).iloc[0]
        want = simple_series(data, m, grain, first, end)
        assert want, m.name
        assert_series_equal(as_dict(table, m.name), want, f"{m.name}@{grain}")

"""An average over an integer column is a real average on every warehouse: Postgres
divides integers by integers with truncation, so the rollup's sum / count must not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from . import rollup_cases as cases
from .helpers import as_dict, assert_series_equal, build_case_project, series_table
from .oracle import Simple, bucket, simple_series

pytestmark = pytest.mark.dbt

METRICS = {
    "orders/avg_whole_ms.yml": "name: avg_whole_ms\nsource: stg_orders\ntimestamp: ordered_at\naggregation: avg\n"
                               "expression: cast(floor(latency_ms) as integer)\ndimensions: [country]\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    raw = cases.make_raw(seed=9)
    return build_case_project(tmp_path_factory.mktemp(f"intavg_{target}"), target, METRICS, raw), raw


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_average_of_an_integer_expression_is_not_truncated(built, grain):
    wh, raw = built
    data = cases.staged(raw)
    data["stg_orders"] = data["stg_orders"].assign(whole_ms=np.floor(data["stg_orders"]["latency_ms"]))
    m = Simple("avg_whole_ms", "stg_orders", "ordered_at", "avg", "whole_ms", dims=("country",))
    first = bucket(pd.Series([pd.Timestamp(cases.START)]), grain).iloc[0]
    want = simple_series(data, m, grain, first, pd.Timestamp(cases.WINDOW[1]))
    # the data must make truncation visible: some averages are not whole numbers
    assert any(v is not None and v != int(v) for v in want.values())
    assert_series_equal(as_dict(series_table(wh, grain), m.name), want, f"{m.name}@{grain}")

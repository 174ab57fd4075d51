"""A metric with years of history builds in one run on every warehouse: ClickHouse's
first build of 14 years at the month grain wrote 168 month partitions in one insert,
over its default limit of 100, and failed the source's build ("Too many partitions for
single INSERT block"). The oracle is pandas over the raw rows."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, compile_and_build, load_raw, series_table
from .oracle import Simple, simple_series

pytestmark = pytest.mark.dbt

START = dt.date(2012, 1, 1)
WINDOW = (START, dt.date(2026, 1, 1))
METRICS = {"orders/monthly_orders.yml": "name: monthly_orders\nsource: stg_orders\ntimestamp: ordered_at\n"
                                         "aggregation: count\ngrains: [month]\n",
           "orders/monthly_revenue.yml": "name: monthly_revenue\nsource: stg_orders\ntimestamp: ordered_at\n"
                                          "aggregation: sum\nexpression: amount\ngrains: [month]\n"}


def _raw() -> dict[str, pd.DataFrame]:
    raw = cases.make_raw(seed=9)
    rng = np.random.default_rng(9)
    lo, hi = pd.Timestamp(WINDOW[0]), pd.Timestamp(WINDOW[1])
    n = 1500
    orders = raw["orders"].sample(n, replace=True, random_state=9).reset_index(drop=True)
    orders["order_id"] = np.arange(n, dtype=np.int64)
    orders["ordered_at"] = lo + pd.to_timedelta(np.round(rng.uniform(0, (hi - lo).total_seconds(), n)), unit="s")
    raw["orders"] = orders
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    raw = _raw()
    paths = make_project(tmp_path_factory.mktemp(f"long_{target}"), METRICS, f"start: {START}\ngrains: [month]\n")
    from dagster_project.warehouse.connection import Warehouse
    wh = Warehouse(target, paths)
    load_raw(wh, raw)
    compile_and_build(paths, target, WINDOW)
    return wh, raw


def test_fourteen_years_of_months_build_in_one_run(built):
    wh, raw = built
    data = cases.staged(raw)
    table = series_table(wh, "month")
    first, end = pd.Timestamp(START), pd.Timestamp(WINDOW[1])
    for m in (Simple("monthly_orders", "stg_orders", "ordered_at", "count"),
              Simple("monthly_revenue", "stg_orders", "ordered_at", "sum", "amount")):
        want = simple_series(data, m, "month", first, end)
        assert len([k for k in want if k[1] == ""]) == 168
        assert_series_equal(as_dict(table, m.name), want, f"{m.name}@month")

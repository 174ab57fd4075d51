"""A simple metric's expression that is undefined on some rows (x / 0, the square root
of a negative, the logarithm of 0, a negative to a fractional power, 0 to a negative
power) reads those rows as NULL on every warehouse: before, Postgres raised and failed
the whole source's build, and DuckDB and ClickHouse stored inf or nan."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from . import rollup_cases as cases
from .helpers import as_dict, assert_series_equal, build_case_project, series_table
from .oracle import Simple, bucket, simple_series

pytestmark = pytest.mark.dbt

ORDERS = "source: stg_orders\ntimestamp: ordered_at\n"
METRICS = {
    "orders/latency_per_amount.yml": f"name: latency_per_amount\n{ORDERS}aggregation: avg\n"
                                     "expression: latency_ms / amount\ndimensions: [country]\n",
    "orders/root_excess.yml": f"name: root_excess\n{ORDERS}aggregation: sum\nexpression: sqrt(amount - 30)\n",
    "orders/log_amount.yml": f"name: log_amount\n{ORDERS}aggregation: max\nexpression: ln(amount)\n",
    # nested: the inner division and the inner root were left unguarded (Postgres raised)
    "orders/nested_per_amount.yml": f"name: nested_per_amount\n{ORDERS}aggregation: avg\n"
                                    "expression: latency_ms / amount / 2\n",
    "orders/nested_root.yml": f"name: nested_root\n{ORDERS}aggregation: sum\nexpression: sqrt(sqrt(amount - 30))\n",
    "orders/power_root.yml": f"name: power_root\n{ORDERS}aggregation: sum\nexpression: power(amount - 30, 0.5)\n",
    "orders/power_inverse.yml": f"name: power_inverse\n{ORDERS}aggregation: sum\nexpression: power(amount, -1)\n",
    # a filter divides too: a row whose ratio is undefined is not counted
    "orders/fast_per_amount.yml": f"name: fast_per_amount\n{ORDERS}aggregation: count\n"
                                  "filter: latency_ms / amount < 5\n",
}


def _raw() -> dict[str, pd.DataFrame]:
    raw = cases.make_raw(seed=5)
    orders = raw["orders"].copy()
    orders.loc[orders.index % 7 == 0, "amount"] = 0.0  # a free order: every 7th
    raw["orders"] = orders
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    raw = _raw()
    return build_case_project(tmp_path_factory.mktemp(f"undefined_{target}"), target, METRICS, raw), raw


def _oracle_data(raw) -> dict[str, pd.DataFrame]:
    data = cases.staged(raw)
    o = data["stg_orders"]
    amount, latency = o["amount"].astype(float), o["latency_ms"].astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        data["stg_orders"] = o.assign(
            per_amount=(latency / amount).where(amount != 0),
            root_excess=np.sqrt(amount - 30).where(amount >= 30),
            log_amount=np.log(amount).where(amount > 0),
            half_per_amount=(latency / amount / 2).where(amount != 0),
            nested_root=np.sqrt(np.sqrt(amount - 30)).where(amount >= 30),
            inverse=(1.0 / amount).where(amount != 0),
        )
    return data


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_undefined_rows_are_null_on_every_warehouse(built, grain):
    wh, raw = built
    data = _oracle_data(raw)
    o = data["stg_orders"]
    # the data reaches every undefined case
    assert (o["amount"] == 0).sum() > 50 and ((o["amount"] > 0) & (o["amount"] < 30)).sum() > 50
    first = bucket(pd.Series([pd.Timestamp(cases.START)]), grain).iloc[0]
    end = pd.Timestamp(cases.WINDOW[1])
    table = series_table(wh, grain)
    for m in (Simple("latency_per_amount", "stg_orders", "ordered_at", "avg", "per_amount", dims=("country",)),
              Simple("root_excess", "stg_orders", "ordered_at", "sum", "root_excess"),
              Simple("log_amount", "stg_orders", "ordered_at", "max", "log_amount"),
              Simple("nested_per_amount", "stg_orders", "ordered_at", "avg", "half_per_amount"),
              Simple("nested_root", "stg_orders", "ordered_at", "sum", "nested_root"),
              Simple("power_root", "stg_orders", "ordered_at", "sum", "root_excess"),
              Simple("power_inverse", "stg_orders", "ordered_at", "sum", "inverse"),
              Simple("fast_per_amount", "stg_orders", "ordered_at", "count",
                     where=lambda d: d["per_amount"] < 5)):
        want = simple_series(data, m, grain, first, end)
        got = as_dict(table, m.name)
        assert all(v is None or np.isfinite(v) for v in got.values()), m.name
        assert_series_equal(got, want, f"{m.name}@{grain}")

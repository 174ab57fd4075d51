"""Fragments that validated and then built differently per warehouse, or not at all:
round(x, n) and x % n over a double (Postgres has neither: the whole source failed), a
LIKE pattern with a backslash (DuckDB has no default escape: `'D\\%'` matched `D\\E`),
and a character outside the Basic Multilingual Plane in a literal (written as a \\u
surrogate pair, which Jinja decoded to two lone surrogates: dbt failed the source)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from . import rollup_cases as cases
from .helpers import as_dict, assert_series_equal, build_case_project, series_table
from .oracle import Simple, bucket, simple_series

pytestmark = pytest.mark.dbt

FLAG = "\U0001F1FA\U0001F1F8 US"  # a flag emoji: two characters outside the BMP
ORDERS = "source: stg_orders\ntimestamp: ordered_at\n"
METRICS = {
    "orders/rounded_amount.yml": f"name: rounded_amount\n{ORDERS}aggregation: sum\nexpression: round(amount, 1)\n",
    "orders/amount_mod.yml": f"name: amount_mod\n{ORDERS}aggregation: sum\nexpression: amount % 7\n",
    # nested, and under a cast the user wrote: round and % rewritten at every level
    "orders/rounded_mod.yml": f"name: rounded_mod\n{ORDERS}aggregation: sum\nexpression: round(amount, 1) % 7\n",
    "orders/rounded_cast.yml": f"name: rounded_cast\n{ORDERS}aggregation: sum\n"
                               "expression: round(cast(amount as double), 1)\n",
    "orders/escaped_like.yml": f"name: escaped_like\n{ORDERS}aggregation: count\nfilter: \"country like 'D\\\\%%'\"\n",
    "orders/flag_orders.yml": f"name: flag_orders\n{ORDERS}aggregation: count\nfilter: \"country = '{FLAG}'\"\n",
}


def _raw() -> dict[str, pd.DataFrame]:
    raw = cases.make_raw(seed=3)
    orders = raw["orders"].copy()
    # D%E matches 'D\%%' (a literal % then anything); D\E and DE do not
    for i, country in zip(range(0, len(orders), 5), ["D%E", "D\\E", "DE", FLAG] * len(orders)):
        orders.loc[orders.index[i], "country"] = country
    raw["orders"] = orders
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    raw = _raw()
    return build_case_project(tmp_path_factory.mktemp(f"portable_{target}"), target, METRICS, raw), raw


def test_every_warehouse_builds_these_fragments_as_the_oracle_reads_them(built):
    wh, raw = built
    data = cases.staged(raw)
    o = data["stg_orders"]
    amount = o["amount"].astype(float)
    # round(x, 1): the double to 9 decimals, then half away from zero; % keeps the dividend's sign
    rounded = [float(Decimal(repr(round(x, 9))).quantize(Decimal("0.1"), ROUND_HALF_UP)) for x in amount]
    data["stg_orders"] = o.assign(rounded=rounded, modulo=np.fmod(amount, 7), rounded_mod=np.fmod(rounded, 7))
    assert any(abs(x * 10 - round(x * 10)) == 0.5 for x in amount)  # ties, where the warehouses differed
    country = o["country"].astype(object)
    assert (country == "D%E").sum() > 10 and (country == "D\\E").sum() > 10 and (country == FLAG).sum() > 10
    first = bucket(pd.Series([pd.Timestamp(cases.START)]), "day").iloc[0]
    end = pd.Timestamp(cases.WINDOW[1])
    table = series_table(wh, "day")
    for m in (Simple("rounded_amount", "stg_orders", "ordered_at", "sum", "rounded"),
              Simple("amount_mod", "stg_orders", "ordered_at", "sum", "modulo"),
              Simple("rounded_mod", "stg_orders", "ordered_at", "sum", "rounded_mod"),
              Simple("rounded_cast", "stg_orders", "ordered_at", "sum", "rounded"),
              Simple("escaped_like", "stg_orders", "ordered_at", "count", where=lambda d: d["country"] == "D%E"),
              Simple("flag_orders", "stg_orders", "ordered_at", "count", where=lambda d: d["country"] == FLAG)):
        assert_series_equal(as_dict(table, m.name), simple_series(data, m, "day", first, end), f"{m.name}@day")

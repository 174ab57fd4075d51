"""Fragments that validated and then built differently per warehouse, or not at all:
round(x, n) and x % n over a double (Postgres has neither: the whole source failed), a
LIKE pattern with a backslash (DuckDB has no default escape: `'D\\%'` matched `D\\E`),
a character outside the Basic Multilingual Plane in a literal (written as a \\u
surrogate pair, which Jinja decoded to two lone surrogates: dbt failed the source),
lower/upper/substring/position of a non-ASCII text (ClickHouse counted bytes), a cast
to integer (ClickHouse truncated) or to decimal (ClickHouse truncated, and kept the
scale through a division), concat with a NULL part (NULL everywhere, where DuckDB's and
Postgres's own concat skip it), extract(second ...) (Postgres kept the fraction), and a
greatest or case of a bigint and a double (ClickHouse found no common type), the epoch's
fraction of a second (ClickHouse dropped it) and trim (DuckDB's removed Unicode spaces)."""
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
    "orders/lower_unicode.yml": f"name: lower_unicode\n{ORDERS}aggregation: count\nfilter: \"lower(country) = 'ünï'\"\n",
    "orders/upper_unicode.yml": f"name: upper_unicode\n{ORDERS}aggregation: count\nfilter: \"upper(country) = 'ÜNÏ'\"\n",
    "orders/prefix_unicode.yml": f"name: prefix_unicode\n{ORDERS}aggregation: count\n"
                                 "filter: \"substring(country, 1, 2) = 'ün'\"\n",
    "orders/position_unicode.yml": f"name: position_unicode\n{ORDERS}aggregation: count\n"
                                   "filter: \"position('N' in country) = 2\"\n",
    "orders/whole_amount.yml": f"name: whole_amount\n{ORDERS}aggregation: sum\nexpression: cast(amount as integer)\n",
    "orders/cents_thirds.yml": f"name: cents_thirds\n{ORDERS}aggregation: sum\n"
                               "expression: cast(amount / 7 as decimal(10, 2)) / 3\n",
    "orders/country_users.yml": f"name: country_users\n{ORDERS}aggregation: count_distinct\n"
                                "expression: concat(country, '/', user_id)\n",
    # 0.145 * 100 is 14.499999999999998 as a double: each warehouse read its digits past the 9th its own way
    "orders/cents_whole.yml": f"name: cents_whole\n{ORDERS}aggregation: sum\nexpression: cast(amount * 100 as integer)\n",
    "orders/cents_decimal.yml": f"name: cents_decimal\n{ORDERS}aggregation: sum\n"
                                "expression: cast(amount * 100 as decimal(12, 0))\n",
    "orders/cents_rounded.yml": f"name: cents_rounded\n{ORDERS}aggregation: sum\nexpression: round(amount * 100)\n",
    # a bigint and a double in one value: ClickHouse found no common type (the build failed)
    "orders/greatest_id_amount.yml": f"name: greatest_id_amount\n{ORDERS}aggregation: sum\n"
                                     "expression: greatest(order_id, amount)\n",
    "orders/case_id_half.yml": f"name: case_id_half\n{ORDERS}aggregation: sum\n"
                               "expression: case when order_id > 100 then order_id else 0.5 end\n",
    "events/epoch_sum.yml": "name: epoch_sum\nsource: stg_entity_events\ntimestamp: created_at\naggregation: sum\n"
                            "expression: extract(epoch from created_at) - 1708000000\n",
    "orders/trimmed_length.yml": f"name: trimmed_length\n{ORDERS}aggregation: sum\nexpression: length(trim(country))\n",
    "orders/id_sum.yml": f"name: id_sum\n{ORDERS}aggregation: sum\nexpression: order_id\n",
    "events/second_sum.yml": "name: second_sum\nsource: stg_entity_events\ntimestamp: created_at\naggregation: sum\n"
                             "expression: extract(second from created_at)\n",
}


def _raw() -> dict[str, pd.DataFrame]:
    raw = cases.make_raw(seed=3)
    orders = raw["orders"].copy()
    # D%E matches 'D\%%' (a literal % then anything); D\E and DE do not
    for i, country in zip(range(0, len(orders), 5), ["D%E", "D\\E", "DE", FLAG, "ÜNÏ", "ünï", " DE ", "\u3000DE\u00a0"]
                          * len(orders)):
        orders.loc[orders.index[i], "country"] = country
    # amounts whose double times 100 falls just short of a tie (0.145 * 100 = 14.499999999999998)
    for i, amount in zip(range(3, len(orders), 11), [0.145, 1.005, 2.675, 0.285] * len(orders)):
        orders.loc[orders.index[i], "amount"] = amount
    # two ids past 2^62 on one day: their sum passes 2^63 (ClickHouse's Int64 sum wrapped around)
    first = orders.ordered_at.idxmin()
    same_day = orders.index[orders.ordered_at.dt.date == orders.loc[first, "ordered_at"].date()][:2]
    orders.loc[same_day, "order_id"] = [2**62, 2**62 + 1]
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


def _half_up(x: float, places: str) -> Decimal:
    return Decimal(repr(round(x, 9))).quantize(Decimal(places), ROUND_HALF_UP)


def test_text_functions_casts_concat_and_seconds_agree_on_every_warehouse(built):
    wh, raw = built
    data = cases.staged(raw)
    o = data["stg_orders"]
    amount, country = o["amount"].astype(float), o["country"].astype(object)
    assert (country == "ÜNÏ").sum() > 10 and (country == "ünï").sum() > 10 and country.isna().sum() > 10
    assert any(abs(x - int(x)) == 0.5 for x in amount)  # a tie: half away from zero, as round() does
    data["stg_orders"] = o.assign(
        whole=[float(_half_up(x, "1")) for x in amount],
        cents_thirds=[float(_half_up(x / 7, "0.01")) / 3 for x in amount],
        cents=[float(_half_up(x * 100, "1")) for x in amount],
        greatest_id_amount=np.maximum(o["order_id"].astype(float), amount),
        id_float=o["order_id"].astype(float),
        # spaces only: not U+3000 or U+00A0
        trimmed_length=[float(len(c.strip(" "))) if isinstance(c, str) else np.nan for c in country],
        case_id_half=np.where(o["order_id"] > 100, o["order_id"].astype(float), 0.5),
        # concat skips a NULL part
        country_user=[("" if c is None or c != c else c) + "/" + u for c, u in zip(country, o["user_id"])])
    ev = data["stg_entity_events"]
    data["stg_entity_events"] = ev.assign(second=ev["created_at"].dt.second.astype(float),  # whole seconds
                                          # the fraction of a second kept
                                          epoch=(ev["created_at"] - pd.Timestamp("1970-01-01")).dt.total_seconds() - 1708000000)
    assert (ev["created_at"].dt.microsecond > 0).mean() > 0.5
    lowered = country.map(lambda c: c.lower() if isinstance(c, str) else c)
    first = bucket(pd.Series([pd.Timestamp(cases.START)]), "day").iloc[0]
    end = pd.Timestamp(cases.WINDOW[1])
    table = series_table(wh, "day")
    orders = [Simple(name, "stg_orders", "ordered_at", "sum", column) for name, column in (
        ("whole_amount", "whole"), ("cents_thirds", "cents_thirds"), ("cents_whole", "cents"), ("cents_decimal", "cents"),
        ("cents_rounded", "cents"), ("greatest_id_amount", "greatest_id_amount"), ("case_id_half", "case_id_half"),
        ("trimmed_length", "trimmed_length"), ("id_sum", "id_float"))]
    events = [Simple(name, "stg_entity_events", "created_at", "sum", column)
              for name, column in (("second_sum", "second"), ("epoch_sum", "epoch"))]
    counts = [Simple(name, "stg_orders", "ordered_at", "count", where=keep) for name, keep in (
        ("lower_unicode", lambda d: lowered.loc[d.index] == "ünï"), ("upper_unicode", lambda d: lowered.loc[d.index] == "ünï"),
        ("prefix_unicode", lambda d: d["country"] == "ünï"), ("position_unicode", lambda d: d["country"] == "ÜNÏ"))]
    for m in [*orders, *events, *counts, Simple("country_users", "stg_orders", "ordered_at", "count_distinct", "country_user")]:
        assert_series_equal(as_dict(table, m.name), simple_series(data, m, "day", first, end), f"{m.name}@day")

"""Metrics over a dbt seed give the same numbers on every warehouse. A seed is typed by
each adapter from its CSV: decimals must arrive as doubles (not ClickHouse's Float32,
where 31.83 becomes 31.829999923706055) and integers as 64-bit (ids above 2^31 must not
overflow or wrap). Checked against a pandas oracle read from the same CSV, at a relative
tolerance of 1e-12, tighter than the rollup tests' 1e-9, so single precision fails."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import as_dict, compile_and_build, series_table
from .oracle import Simple, bucket, simple_series

pytestmark = pytest.mark.dbt

SEED = "parity_payments"
START = dt.date(2024, 3, 1)
WINDOW = (dt.date(2024, 2, 1), dt.date(2024, 4, 1))
CONFIG = "start: 2024-03-01\ngrains: [hour, day, week, month]\n"
BIG = 3_000_000_000  # > 2^31; BIG + k and BIG + k + 2^32 collide in 32 bits

SEED_YAML = f"""version: 2
seeds:
  - name: {SEED}
    description: Payments with exact decimal amounts and 64-bit account ids (parity test).
    # DuckDB and Postgres type whole-number seed columns `integer` and refuse ids past
    # 2^31 (loudly), so they need bigint here; ClickHouse gets no override: its inferred
    # types are what this test checks
    config:
      column_types: "{{{{ {{'payment_id': 'bigint', 'account_id': 'bigint'}} if target.type != 'clickhouse' else {{}} }}}}"
    columns:
      - {{name: payment_id, data_type: bigint}}
      - {{name: account_id, data_type: bigint}}
      - {{name: method, data_type: varchar}}
      - {{name: amount, data_type: double}}
      - {{name: paid_at, data_type: timestamp}}
"""

S = f"source: {SEED}\ntimestamp: paid_at\n"
METRICS = {
    "pay/pay_total.yml": f"name: pay_total\n{S}aggregation: sum\nexpression: amount\ndimensions: [method]\n",
    "pay/pay_avg.yml": f"name: pay_avg\n{S}aggregation: avg\nexpression: amount\ndimensions: [method]\n",
    "pay/pay_max.yml": f"name: pay_max\n{S}aggregation: max\nexpression: amount\ndimensions: [method]\n",
    "pay/pay_accounts.yml": f"name: pay_accounts\n{S}aggregation: count_distinct\nexpression: account_id\ndimensions: [method]\n",
    "pay/max_account.yml": f"name: max_account\n{S}aggregation: max\nexpression: account_id\ndimensions: [method]\n",
}
ORACLE = [
    Simple("pay_total", SEED, "paid_at", "sum", "amount", dims=("method",)),
    Simple("pay_avg", SEED, "paid_at", "avg", "amount", dims=("method",)),
    Simple("pay_max", SEED, "paid_at", "max", "amount", dims=("method",)),
    Simple("pay_accounts", SEED, "paid_at", "count_distinct", "account_id", dims=("method",)),
    Simple("max_account", SEED, "paid_at", "max", "account_id", dims=("method",)),
]


def seed_csv(seed: int = 5) -> str:
    """Amounts with two decimals (none of them exact in binary), ids past 2^31 and 2^32."""
    rng = np.random.default_rng(seed)
    n = 400
    lo = pd.Timestamp("2024-03-01")
    paid = lo + pd.to_timedelta(rng.integers(0, 20 * 86400, size=n), unit="s")
    cents = np.round(rng.lognormal(7, 2, size=n)).astype(np.int64) + 1
    k = rng.integers(0, 40, size=n)
    accounts = BIG + k + np.where(rng.random(n) < 0.5, 2**32, 0)
    rows = [(i, int(a), str(m), f"{c // 100}.{c % 100:02d}", t.strftime("%Y-%m-%d %H:%M:%S"))
            for i, (a, m, c, t) in enumerate(zip(accounts, rng.choice(["card", "wire", "cash"], size=n), cents, paid))]
    rows += [  # the amounts a parity run reported wrong, and the largest ids
        (n, BIG + 7, "card", "31.83", "2024-03-02 10:00:00"),
        (n + 1, BIG + 7 + 2**32, "card", "0.1", "2024-03-02 10:30:00"),
        (n + 2, 9_000_000_000_000_000_000, "wire", "1234567.89", "2024-03-05 23:59:59"),
        (n + 3, 2**31, "cash", "0.01", "2024-03-11 00:00:00"),
        (n + 4, 2**31 - 1, "cash", "99999.99", "2024-03-11 00:00:01"),
    ]
    lines = ["payment_id,account_id,method,amount,paid_at"]
    lines += [f"{i},{a},{m},{amt},{ts}" for i, a, m, amt, ts in rows]
    return "\n".join(lines) + "\n"


def expected(frame: pd.DataFrame, grain: str) -> dict[str, dict]:
    first = bucket(pd.Series([pd.Timestamp(START)]), grain).iloc[0]
    end = bucket(pd.Series([pd.Timestamp(WINDOW[1])]), grain).iloc[0]
    if end < pd.Timestamp(WINDOW[1]):
        from .oracle import next_bucket
        end = next_bucket(end, grain)
    return {m.name: simple_series({SEED: frame}, m, grain, first, end) for m in ORACLE}


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    root = tmp_path_factory.mktemp(f"seed_parity_{target}")
    paths = make_project(root, METRICS, CONFIG)
    # no raw tables here: only the seeds are built
    for sql in (root / "models" / "staging").glob("stg_*.sql"):
        sql.unlink()
    (root / "models" / "staging" / "_staging__models.yml").unlink()
    text = seed_csv()
    (root / "seeds" / f"{SEED}.csv").write_text(text)
    (root / "seeds" / f"_{SEED}.yml").write_text(SEED_YAML)
    compile_and_build(paths, target, WINDOW)
    frame = pd.read_csv(root / "seeds" / f"{SEED}.csv", dtype={"account_id": "int64", "method": str}, parse_dates=["paid_at"])
    return target, Warehouse(target, paths), frame


@pytest.mark.parametrize("grain", ["hour", "day", "week", "month"])
def test_seed_metrics_match_the_oracle_exactly(built, grain):
    target, wh, frame = built
    table = series_table(wh, grain)
    want = expected(frame, grain)
    assert set(table.metric) == set(want)
    for metric, series in want.items():
        got = as_dict(table, metric)
        label = f"{metric}@{grain} on {target}"
        assert set(got) == set(series), f"{label}: buckets differ: {sorted(set(got) ^ set(series))[:5]}"
        wrong = [(k, got[k], series[k]) for k in sorted(series) if not close(got[k], series[k])]
        assert not wrong, f"{label}: {len(wrong)} values differ, e.g. {wrong[:3]}"


def test_decimal_and_large_integer_values_survive_loading(built):
    target, wh, frame = built
    seed = wh.frame(f"select account_id, amount from {wh.schema}_seeds.{SEED} order by payment_id")
    assert [int(x) for x in seed.account_id] == frame.account_id.tolist(), target
    assert [float(x) for x in seed.amount] == frame.amount.tolist(), target  # 31.83 is 31.83, not 31.829999923706055

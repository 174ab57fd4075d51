"""A metric name may have up to 60 characters; a Dagster tag key at most 63. Names that
validate must also run: the Dagster definitions load and `metrics run` builds them."""
from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT

from .conftest import make_project

pytestmark = pytest.mark.dbt

LONG = "orders_counted_with_a_name_as_long_as_the_spec_allows_abcdef"  # 60 characters
LONG_RATIO = "refund_share_with_a_name_as_long_as_the_spec_allows_abcdefgh"  # 60, inline sides
METRICS = {
    f"commerce/{LONG}.yml": f"name: {LONG}\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n",
    f"commerce/{LONG_RATIO}.yml": (
        f"name: {LONG_RATIO}\nkind: ratio\n"
        "numerator: {source: stg_orders, timestamp: ordered_at, aggregation: count, filter: refunded}\n"
        "denominator: {source: stg_orders, timestamp: ordered_at, aggregation: count}\n"),
}


def test_sixty_character_names_load_in_dagster_and_run(tmp_path, capsys):
    from dagster_project.defs.translator import metric_tag
    assert len(LONG) == len(LONG_RATIO) == 60
    assert len({metric_tag(LONG), metric_tag(LONG_RATIO)}) == 2
    assert all(len(metric_tag(n)) <= 63 for n in (LONG, LONG_RATIO))
    paths = make_project(tmp_path, METRICS, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    args = ["--project-dir", str(tmp_path)]
    assert main([*args, "validate"]) == 0
    assert main([*args, "demo-data", "--days", "2", "--end", "2026-09-03", "--events-per-day", "1500"]) == 0
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-03"]) == 0
    capsys.readouterr()
    assert main([*args, "series", LONG, "--grain", "day", "--start", "2026-09-01", "--end", "2026-09-03",
                 "--format", "csv"]) == 0
    got = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    with duckdb.connect(str(paths.warehouse_dir / "metrics.duckdb"), read_only=True) as con:
        raw = con.sql("select ordered_at from raw.orders").df()
    days = pd.to_datetime(raw.ordered_at).dt.floor("D").value_counts()
    for row in got.itertuples():
        day = pd.Timestamp(row.bucket_start).tz_localize(None)
        assert row.value == days.get(day, 0), day
    assert len(got) == 2 and got.value.sum() == days[days.index < pd.Timestamp(dt.date(2026, 9, 3))].sum()

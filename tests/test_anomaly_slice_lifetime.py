"""A slice is scored while it exists: from its first row, and as zeros for a training
window after its last one; not before it appeared, not long after it went away. That
makes `metric_anomalies` the same whichever windows were scored: a slice first seen late
in a long window, or only far before a short one, is not scored there by either run.
Real dbt build on DuckDB; the rows are compared with what one full run stored."""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re

import pandas as pd
import pytest

from dagster_project.anomaly import DetectorSettings, history_needed
from dagster_project.demo.generator import generate_range
from dagster_project.paths import REPO_ROOT
from dagster_project.scoring.window import score, write
from dagster_project.validation.project import load_project
from dagster_project.warehouse.anomaly_store import read_anomalies
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

FIRST = dt.date(2026, 1, 1)
DAYS = 150
END = FIRST + dt.timedelta(days=DAYS)
NOW = dt.datetime.combine(END, dt.time())
ORDERS = "name: orders\ndescription: Orders placed.\nsource: stg_orders\ntimestamp: ordered_at\n" \
         "aggregation: count\ndimensions: [country]\n"
NEW_FROM = 100            # JP's first order is on day 100
SPARSE_DAYS = (5, 120)    # IS has an order on these days only
GONE_AFTER = 60           # FR's last order is on day 59
BROKEN = "new\nline"


def _day(n: int) -> dt.datetime:
    return dt.datetime.combine(FIRST + dt.timedelta(days=n), dt.time())


def _raw() -> dict[str, pd.DataFrame]:
    raw = generate_range(FIRST, END, seed=5, events_per_day=400, now=NOW)
    orders = raw["orders"].copy()
    day = (pd.to_datetime(orders.ordered_at).dt.tz_localize(None) - pd.Timestamp(FIRST)).dt.days
    keep = ~((orders.country == "JP") & (day < NEW_FROM)) & ~((orders.country == "FR") & (day >= GONE_AFTER))
    orders, day = orders[keep].reset_index(drop=True), day[keep].reset_index(drop=True)
    for d in SPARSE_DAYS:  # one order of that day moves to Iceland
        orders.loc[day[day == d].index[0], "country"] = "IS"
    orders.loc[(orders.country == "US") & (orders.index % 3 == 0), "country"] = BROKEN  # a raw line break
    raw["orders"] = orders
    return raw


def _rows(wh) -> dict[tuple, tuple]:
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    out = {}
    for r in rows:
        d = dict(zip(columns, r))
        key = (d["metric"], pd.Timestamp(d["bucket_start"]), d["dimension"], d["dimension_value"])
        out[key] = tuple(None if isinstance(d[c], float) and math.isnan(d[c]) else d[c]
                         for c in ("value", "expected", "lower", "upper", "score", "is_anomaly", "model", "reason"))
    return out


def _same(a: tuple, b: tuple) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) if isinstance(x, float) and isinstance(y, float)
               else x == y for x, y in zip(a, b))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("slice_lifetime")
    config = re.sub(r"(?m)^start: .*$", f"start: {FIRST}", (REPO_ROOT / "metrics" / "_config.yml").read_text())
    paths = make_project(root, {"commerce/orders.yml": ORDERS}, config)
    wh = Warehouse("duckdb", paths)
    load_raw(wh, _raw())
    compile_and_build(paths, "duckdb", (FIRST, END))
    project = load_project(paths).project
    frame, summary = score(wh, project, "day", _day(0), _day(DAYS), NOW)
    write(wh, "day", frame, summary, "full", NOW)
    return wh, project, _rows(wh)


def _buckets(rows: dict, country: str) -> list[int]:
    return sorted((key[1] - pd.Timestamp(FIRST)).days for key in rows if key[2] == "country" and key[3] == country)


def test_a_slice_is_scored_from_its_first_row_until_a_training_window_after_its_last(built):
    _, _, rows = built
    history = history_needed("day", DetectorSettings())
    assert _buckets(rows, "JP") == list(range(NEW_FROM, DAYS))
    assert _buckets(rows, "FR") == list(range(0, GONE_AFTER - 1 + history + 1))
    sparse = sorted({d for first in SPARSE_DAYS for d in range(first, min(DAYS, first + history + 1))})
    assert _buckets(rows, "IS") == sparse
    # the total and a slice that never stopped are scored on every day
    assert _buckets(rows, "US") == list(range(DAYS))
    assert len([k for k in rows if k[2] == ""]) == DAYS


@pytest.mark.parametrize("first, last", [(80, 90), (125, 135), (30, 31)])
def test_rescoring_a_short_window_leaves_the_rows_one_full_run_stored(built, first, last):
    wh, project, full = built
    frame, summary = score(wh, project, "day", _day(first), _day(last), NOW)
    write(wh, "day", frame, summary, f"rescore-{first}", NOW)
    after = _rows(wh)
    assert after.keys() == full.keys(), (sorted(full.keys() - after.keys())[:5], sorted(after.keys() - full.keys())[:5])
    changed = [k for k in full if not _same(full[k], after[k])]
    assert not changed, [(k, full[k], after[k]) for k in changed[:3]]


def test_a_slice_value_with_a_line_break_keeps_reasons_and_the_listing_on_one_line(built, capsys):
    """The reason quotes the slice: a raw line break in it broke the one-line reason (and
    alert texts built from it) and the `metrics anomalies` table."""
    from dagster_project.cli.main import main
    wh, _, rows = built
    broken = {k: v for k, v in rows.items() if k[3] == BROKEN}
    assert broken and all("\n" not in v[-1] and "[country=new\\nline]" in v[-1] for v in broken.values())
    capsys.readouterr()
    assert main(["--project-dir", str(wh.paths.root), "anomalies", "--all", "--grain", "day",
                 "--slice", f"country={BROKEN}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(broken) and all("country=new\\nline" in line for line in lines[1:])
    # a slice that no row has: the known values and the suggestion name it on one line
    assert main(["--project-dir", str(wh.paths.root), "anomalies", "--slice", "country=new line"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean `new\\nline`?)" in err, err
    assert err.rstrip().endswith("known values: BR, DE, FR, IN, IS, JP, US, new\\nline"), err
    # typed as listed (a backslash and an n): that value, for the listing and for the series
    assert main(["--project-dir", str(wh.paths.root), "anomalies", "--all", "--grain", "day",
                 "--slice", "country=new\\nline"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["--project-dir", str(wh.paths.root), "series", "orders", "--grain", "day",
                 "--slice", "country=new\\nline", "--format", "csv"]) == 0
    series_csv = capsys.readouterr().out
    series = list(csv.reader(io.StringIO(series_csv)))
    assert len(series) == 1 + DAYS and all(row[3:5] == ["country", BROKEN] for row in series[1:]), series[:2]
    # the two listings write a count alike (`896`, not `896.0` in one of them)
    assert main(["--project-dir", str(wh.paths.root), "anomalies", "--all", "--grain", "day",
                 "--slice", f"country={BROKEN}", "--format", "csv"]) == 0
    scored = {r["bucket_start"][:10]: r["value"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    written = {r["bucket_start"][:10]: r["value"] for r in csv.DictReader(io.StringIO(series_csv))}
    assert len(scored) == len(broken) and all(scored[d] == written[d] and "." not in scored[d] for d in scored), \
        list(scored.items())[:3]

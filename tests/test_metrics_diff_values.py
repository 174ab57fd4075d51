"""`metrics diff --base REF --values`: the old and new definitions built with real dbt into
scratch schemas of each warehouse, compared, and the scratch schemas dropped. The numbers
are checked against pandas over the raw rows (old filter vs new filter), not against the
tool's own output."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import load_raw
from .rollup_cases import make_raw
from .test_metrics_diff import commit, edit, git

NOW = dt.datetime(2024, 3, 12, 15, 30)  # inside make_raw's range (2024-02-20 .. 2024-03-13)
DAYS = 7
OLD_FILTER, NEW_FILTER = ("Download",), ("Download", "View")
METRICS = {
    "events/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                            "filter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "events/likes.yml": "name: likes\ndescription: Likes.\nsource: stg_entity_events\ntimestamp: created_at\n"
                        "aggregation: count\nfilter: \"metric_type = 'Like'\"\ndimensions: [entity_type]\n",
    "events/likes_per_download.yml": "name: likes_per_download\nkind: ratio\nnumerator: likes\ndenominator: downloads\n",
    "orders/orders.yml": "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n",
}
CONFIG = "start: 2024-02-20\ngrains: [hour, day, week, month]\n"


@pytest.fixture
def repo(tmp_path, monkeypatch, target):
    """A git repo with the base commit, raw rows loaded into the (isolated) warehouse."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    root = tmp_path / "repo"
    paths = make_project(root, METRICS, CONFIG)
    (root / ".gitignore").write_text("warehouse/\ndbt_project/target/\ndbt_project/logs/\n")
    git(root, "init", "-q", "-b", "main")
    commit(root, "base")
    raw = make_raw()
    load_raw(Warehouse(target, paths), raw)
    return paths, raw


def scratch_schemas(wh: Warehouse) -> list[str]:
    if wh.target == "clickhouse":
        sql = "select name from system.databases where name like ?"
    else:
        sql = "select schema_name from information_schema.schemata where schema_name like ?"
    return [r[0] for r in wh.rows(sql, ["%diff%"])[1]]


def oracle(raw: dict, freq: str) -> tuple[int, int, float, float]:
    """(buckets, differing, max, mean relative change) of the total, from the raw rows:
    every bucket from the window's first day to the one holding NOW."""
    ev = raw["entity_events"]
    start = pd.Timestamp(NOW.date() - dt.timedelta(days=DAYS - 1))
    buckets = pd.date_range(start, pd.Timestamp(NOW).floor(freq), freq=freq)
    key = ev.created_at.dt.floor(freq)
    old = ev[ev.metric_type.isin(OLD_FILTER)].groupby(key).size().reindex(buckets, fill_value=0)
    new = ev[ev.metric_type.isin(NEW_FILTER)].groupby(key).size().reindex(buckets, fill_value=0)
    rel = ((new - old).abs() / old)[old != 0]
    return len(buckets), int((old != new).sum()), float(rel.max()), float(rel.mean())


def run_values(paths, target, capsys, *extra) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--project-dir", str(paths.root), "diff", "--base", "HEAD", "--values", "--days", str(DAYS),
               "--target", target, *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.dbt
def test_values_of_a_breaking_and_a_non_breaking_change(repo, target, capsys):
    paths, raw = repo
    edit(paths, "events/downloads.yml", "metric_type = 'Download'", "metric_type in ('Download', 'View')")
    edit(paths, "events/likes.yml", "description: Likes.", "description: Every like.")
    rc, out, err = run_values(paths, target, capsys, "--format", "json")
    assert rc == 0, err
    values = json.loads(out)["values"]
    assert (values["start"], values["end"], values["days"]) == ("2024-03-06", "2024-03-13", DAYS)
    got = {m["name"]: m for m in values["metrics"]}
    assert set(got) == {"downloads", "likes", "likes_per_download"}  # the ratio reads downloads
    assert got["downloads"]["impact"] == "breaking" and got["likes"]["impact"] == "non-breaking"
    grains = {g["grain"]: g for g in got["downloads"]["grains"]}
    for grain, freq in (("day", "D"), ("hour", "h")):
        t = grains[grain]["total"]
        want = oracle(raw, freq)
        assert (t["buckets"], t["differing"]) == want[:2], grain
        assert t["max_change"] == pytest.approx(want[2], rel=1e-9) and t["mean_change"] == pytest.approx(want[3], rel=1e-9)
        assert grains[grain]["differing"] >= t["differing"] > 0 and grains[grain]["buckets"] > t["buckets"]
    assert grains["day"]["in_progress"] == "2024-03-12T00:00:00Z"  # ISO 8601 UTC, as every JSON timestamp
    # the week holding NOW starts inside the window; no month does
    assert grains["week"]["total"]["buckets"] == 1 and grains["month"]["buckets"] == 0
    example = grains["day"]["examples"][0]
    assert example["new"] > example["old"] and set(example) == {"bucket", "slice", "old", "new", "in_progress"}
    for g in got["likes"]["grains"]:
        assert g["differing"] == 0 and (g["buckets"] > 0 or g["grain"] == "month"), g
    assert any(g["differing"] for g in got["likes_per_download"]["grains"])
    wh = Warehouse(target, paths)
    assert scratch_schemas(wh) == []

    # text and Markdown carry the same section; without --values nothing is built
    rc, out, err = run_values(paths, target, capsys)
    assert rc == 0, err
    assert "Values over the last 7 days (2024-03-06 .. 2024-03-12" in out and "  downloads (breaking)" in out
    rc, out, err = run_values(paths, target, capsys, "--format", "markdown")
    assert rc == 0 and "### Values" in out and "#### `likes` (non-breaking)" in out
    assert "| grain | buckets | differing | max change | mean change | total: differing |" in out
    assert main(["--project-dir", str(paths.root), "diff", "--base", "HEAD", "--format", "json"]) == 0
    assert "values" not in json.loads(capsys.readouterr().out)
    assert scratch_schemas(wh) == []


@pytest.mark.dbt
def test_a_dbt_failure_on_one_side_still_drops_the_scratch_schemas(repo, target, capsys):
    paths, _ = repo
    edit(paths, "events/downloads.yml", "metric_type = 'Download'", "metric_type = 'View'")
    (paths.metrics_dir / "orders" / "big_orders.yml").write_text(
        "name: big_orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\nfilter: \"amount > 100\"\n")
    # the working tree breaks a staging model: the old side builds, the new one fails
    (paths.models_dir / "staging" / "stg_follower_snapshots.sql").write_text(
        "select user_id, observed_at, no_such_column as followers\nfrom {{ source('raw', 'follower_snapshots') }}\n")
    rc, out, err = run_values(paths, target, capsys)
    assert rc == 2 and out == ""
    assert "dbt failed building the new definitions (working tree)" in err and "stg_follower_snapshots" in err, err
    assert "scratch schemas dropped" in err
    assert scratch_schemas(Warehouse(target, paths)) == []


@pytest.mark.dbt
def test_a_build_that_would_write_outside_the_scratch_schemas_is_refused(repo, target, capsys):
    """A custom generate_schema_name (seeds into `seeds` as written): nothing is built
    there, and the real schemas stay as they were."""
    paths, _ = repo
    edit(paths, "events/downloads.yml", "metric_type = 'Download'", "metric_type = 'View'")
    (paths.root / "macros" / "generate_schema_name.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) -%}\n"
        "{{ custom_schema_name if custom_schema_name else target.schema }}\n{%- endmacro %}\n")
    wh = Warehouse(target, paths)
    listing = ("select name from system.databases" if target == "clickhouse"
               else "select schema_name from information_schema.schemata")
    schemas = lambda: {r[0] for r in wh.rows(listing)[1]}  # noqa: E731
    before = schemas()
    rc, out, err = run_values(paths, target, capsys)
    assert rc == 2 and "would land elsewhere" in err and "seeds" in err, err
    assert schemas() == before  # no `seeds` schema created, every scratch schema dropped


def test_unreachable_warehouse_and_nothing_to_compare(tmp_path, monkeypatch, capsys):
    """No dbt here: an added metric alone builds nothing; a warehouse that cannot be
    reached is exit 2 before anything is built."""
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    root = tmp_path / "repo"
    paths = make_project(root, METRICS, CONFIG)
    (root / ".gitignore").write_text("warehouse/\n")
    git(root, "init", "-q", "-b", "main")
    commit(root, "base")
    (paths.metrics_dir / "orders" / "big_orders.yml").write_text(
        "name: big_orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\nfilter: \"amount > 100\"\n")
    monkeypatch.setenv("METRICS_PG_PORT", "1")  # nothing listens there
    args = ["--project-dir", str(root), "diff", "--base", "HEAD", "--values", "--target", "postgres"]
    assert main([*args, "--format", "json"]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    assert values["metrics"] == [] and values["skipped"] == ["big_orders: added (nothing to compare with)"]
    edit(paths, "orders/orders.yml", "aggregation: count", "aggregation: count\nfilter: \"amount > 1\"")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "postgres: cannot connect" in err and "no values compared" in err


def test_compare_grain_counts_nulls_and_one_sided_values():
    from dagster_project.pr.values import compare_grain
    b1, b2, b3 = (dt.datetime(2024, 3, d) for d in (10, 11, 12))
    old = {(b1, "", ""): 10.0, (b2, "", ""): None, (b3, "", ""): 0.0, (b1, "c", "x"): 4.0}
    new = {(b1, "", ""): 12.0, (b2, "", ""): 5.0, (b3, "", ""): 0.0, (b1, "c", "x"): 4.0 * (1 + 1e-12)}
    g = compare_grain("day", old, new, b3)
    assert (g.all.buckets, g.all.differing) == (4, 2)  # float noise is not a change; NULL -> 5 is
    assert g.all.max_change == pytest.approx(0.2) and g.all.mean_change == pytest.approx(0.1)  # b1 total, slice
    assert (g.total.buckets, g.total.differing) == (3, 2) and g.total.mean_change == pytest.approx(0.2)
    assert [e["slice"] for e in g.examples] == ["total", "total"] and g.examples[0]["old"] == 10.0
    assert g.examples[1] == {"bucket": "2024-03-11T00:00:00Z", "slice": "total", "old": None, "new": 5.0,
                             "in_progress": False}

"""`metrics run` rebuilds the seeds and staging views, and the metric catalog, only when
their definitions changed since their last build on this warehouse, or one of them is
missing."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dagster_project.cli.main import main
from dagster_project.demo.generator import generate_range
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import load_raw

pytestmark = pytest.mark.dbt

METRIC = "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\ngrains: [day]\n"


def _run(args, capsys) -> str:
    capsys.readouterr()
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-03"]) == 0
    return capsys.readouterr().out


def _project(tmp_path, monkeypatch):
    """A one-metric project with two days of raw rows: (paths, warehouse, CLI args)."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    paths = make_project(tmp_path, {"c/orders.yml": METRIC}, "start: 2026-09-01\n")
    wh = Warehouse("duckdb", paths)
    load_raw(wh, generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 3), events_per_day=300))
    return paths, wh, ["--project-dir", str(paths.root)]


def test_staging_is_rebuilt_only_when_it_changed_or_went_missing(tmp_path, capsys, monkeypatch):
    paths, wh, args = _project(tmp_path, monkeypatch)
    assert "seeds, staging views: 4 assets" in _run(args, capsys)
    assert "staging views: unchanged since their last build on this warehouse (skipped)" in _run(args, capsys)
    # a changed staging model is rebuilt
    model = paths.models_dir / "staging" / "stg_orders.sql"
    model.write_text(model.read_text() + "\n-- a change\n")
    assert "seeds, staging views: 4 assets" in _run(args, capsys)
    assert "(skipped)" in _run(args, capsys)
    # a dropped view is rebuilt, and the run still builds the rollups
    wh.execute(f"drop view {wh.relation('stg_orders')}")
    out = _run(args, capsys)
    assert "seeds, staging views: 4 assets" in out and "day rollups" in out
    assert "(skipped)" in _run(args, capsys)
    # a dropped seed table (in its own schema) is rebuilt: only the views were looked for
    seed = wh.frame("select table_schema from information_schema.tables where table_name = 'entity_types'")
    wh.execute(f"drop table {seed.table_schema.iloc[0]}.entity_types")
    assert "seeds, staging views: 4 assets" in _run(args, capsys)
    assert "(skipped)" in _run(args, capsys)
    # another warehouse file has never been built
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "other.duckdb"))
    load_raw(Warehouse("duckdb", paths), generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 3), events_per_day=300))
    assert "seeds, staging views: 4 assets" in _run(args, capsys)


def test_the_catalog_is_rebuilt_only_when_a_definition_changed_or_it_went_missing(tmp_path, capsys, monkeypatch):
    paths, wh, args = _project(tmp_path, monkeypatch)
    built, kept = "metric catalog: 1 assets", "metric catalog: unchanged since its last build on this warehouse"

    def catalog() -> list[tuple]:
        rows = wh.frame(f"select metric, definition from {wh.relation('metric_catalog')}").itertuples(index=False)
        return sorted((m, json.loads(d).get("description")) for m, d in rows)

    assert built in _run(args, capsys)
    assert kept in _run(args, capsys) and catalog() == [("orders", None)]
    # a metric file changed: `metrics run` compiles it, the catalog follows
    (paths.metrics_dir / "c" / "orders.yml").write_text(METRIC + "description: Orders placed.\n")
    assert built in _run(args, capsys) and catalog() == [("orders", "Orders placed.")]
    assert kept in _run(args, capsys)
    wh.execute(f"drop view {wh.relation('metric_catalog')}")
    assert built in _run(args, capsys) and catalog() == [("orders", "Orders placed.")]

"""The read cache (validation/read_cache.py): a read reuses the last full load only while
every file it came from is unchanged; anything else falls back to full validation."""
from __future__ import annotations

import shutil

from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT
from dagster_project.validation import read_cache
from dagster_project.validation.project import load_project

from .conftest import make_project


def _project(tmp_path):
    paths = make_project(tmp_path, {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    return paths


def test_cached_metrics_equal_the_full_load(tmp_path):
    paths = _project(tmp_path)
    assert read_cache.load(paths) is None  # nothing stored yet
    project = load_project(paths).project
    read_cache.store(paths, project)
    cached = read_cache.load(paths)
    assert cached is not None and set(cached.metrics) == set(project.metrics)
    for name, m in project.metrics.items():
        c = cached.metrics[name]
        assert (c.kind, c.status, c.public, c.grains, c.start, c.dimensions, c.fill, c.inputs) == \
            (m.kind, m.status, m.public, m.grains, m.start, m.dimensions, m.fill, m.inputs), name
        if m.measure is not None:
            assert (c.measure.source, c.measure.timestamp, c.measure.aggregation) == \
                (m.measure.source, m.measure.timestamp, m.measure.aggregation)
    assert [m.name for m in cached.public()] == [m.name for m in project.public()]


def test_any_changed_file_invalidates_the_cache(tmp_path):
    paths = _project(tmp_path)
    read_cache.store(paths, load_project(paths).project)
    assert read_cache.load(paths) is not None
    orders = paths.metrics_dir / "commerce" / "orders.yml"
    orders.write_text(orders.read_text().replace("dimensions: [country]", "dimensions: []"))
    assert read_cache.load(paths) is None
    read_cache.store(paths, load_project(paths).project)
    assert read_cache.load(paths).metrics["orders"].dimensions == ()
    # the dbt YAML validation reads counts too
    sources = paths.models_dir / "staging" / "_sources.yml"
    sources.write_text(sources.read_text() + "\n")
    assert read_cache.load(paths) is None


def test_series_never_reads_past_a_broken_file(tmp_path, capsys, monkeypatch):
    paths = _project(tmp_path)
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    read_cache.store(paths, load_project(paths).project)
    orders = paths.metrics_dir / "commerce" / "orders.yml"
    orders.write_text(orders.read_text() + "aggregation_typo: 1\n")
    assert main(["--project-dir", str(paths.root), "series", "orders", "--grain", "day"]) == 1
    assert "metrics/commerce/orders.yml:" in capsys.readouterr().err

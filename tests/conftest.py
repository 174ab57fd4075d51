"""Shared fixtures: a throwaway copy of the project (dbt project, macros, staging models,
seeds) in a temporary folder, with its own metrics/ and its own DuckDB file."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dagster_project.paths import REPO_ROOT, ProjectPaths

_COPY = ["dbt_project/dbt_project.yml", "dbt_project/profiles.yml", "macros", "models/staging", "seeds"]


def make_project(root: Path, metrics: dict[str, str], config: str | None = None) -> ProjectPaths:
    """A project at `root` with the given metric files ({'domain/name.yml': yaml})."""
    for rel in _COPY:
        src, dst = REPO_ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)
    (root / "models" / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics").mkdir(exist_ok=True)
    if config is not None:
        (root / "metrics" / "_config.yml").write_text(config)
    for rel, text in metrics.items():
        path = root / "metrics" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ProjectPaths(root)


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("METRICS_PROJECT_DIR", raising=False)
    monkeypatch.delenv("METRICS_TARGET", raising=False)
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _clean_metrics_env():
    """Tests choose their own warehouse; a developer's METRICS_* settings must not leak in."""
    import os
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("METRICS_")}
    yield
    os.environ.update(saved)

"""Where a project's parts live. Every layer takes a ProjectPaths so tests can point the
whole tool at a copy of the repository in a temporary folder."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> "ProjectPaths":
        """The folder holding metrics/ and dbt_project/: METRICS_PROJECT_DIR, else the
        nearest parent of the working directory that has both, else this checkout."""
        env = os.environ.get("METRICS_PROJECT_DIR")
        if env:
            return cls(Path(env).resolve())
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "metrics").is_dir() and (candidate / "dbt_project").is_dir():
                return cls(candidate)
        return cls(REPO_ROOT)

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def config_file(self) -> Path:
        return self.metrics_dir / "_config.yml"

    @property
    def dbt_project_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def generated_dir(self) -> Path:
        return self.models_dir / "metrics"

    @property
    def seeds_dir(self) -> Path:
        return self.root / "seeds"

    @property
    def schema_file(self) -> Path:
        return self.root / "docs" / "metric.schema.json"

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def duckdb_path(self) -> Path:
        env = os.environ.get("METRICS_DUCKDB_PATH")
        return Path(env).resolve() if env else self.warehouse_dir / "metrics.duckdb"

    @property
    def chdb_path(self) -> Path:
        env = os.environ.get("METRICS_CHDB_PATH")
        return Path(env).resolve() if env else self.warehouse_dir / "chdb"

    def relative(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(path)

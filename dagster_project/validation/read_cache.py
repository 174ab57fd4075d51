"""What a read needs to know about each metric (grains, dimensions, start, status, how an
empty bucket reads), cached in dbt_project/target/ under a fingerprint of every file the
project is validated from. A read whose files did not change since the last full load
skips pydantic, sqlglot and the validation pass (`metrics series` starts in a fraction of
the time); any change, or a metric the cache cannot serve, falls back to the full load.

The fingerprint covers the metric YAML, the dbt YAML validation reads (models/ outside
the generated folder, seeds/), and this package's spec and validation code, so neither
an edited file nor an upgraded tool is ever read through a stale entry."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import ProjectPaths

VERSION = 1
_CODE = [Path(__file__).resolve().parent / name for name in ("project.py", "catalog.py", "rules.py", "column_types.py",
                                                                     "read_cache.py")] + \
    [Path(__file__).resolve().parent.parent / "spec" / name for name in ("raw.py", "resolved.py")]


@dataclass(frozen=True)
class CachedMeasure:
    source: str
    timestamp: str
    aggregation: str


@dataclass(frozen=True)
class CachedMetric:
    """The fields of spec.resolved.Metric that warehouse/read.py uses."""

    name: str
    kind: str
    status: str
    public: bool
    grains: tuple[str, ...]
    start: dt.date
    dimensions: tuple[str, ...]
    fill: float | None
    inputs: tuple[str, ...] = ()
    measure: CachedMeasure | None = None
    formula: None = None  # an archived derived metric needs its parsed formula: never cached


@dataclass(frozen=True)
class CachedProject:
    metrics: dict[str, CachedMetric] = field(default_factory=dict)

    def public(self) -> list[CachedMetric]:
        return sorted((m for m in self.metrics.values() if m.public), key=lambda m: m.name)


def cache_file(paths: ProjectPaths) -> Path:
    return paths.dbt_project_dir / "target" / "metrics_read_cache.json"


def fingerprint(paths: ProjectPaths) -> str:
    digest = hashlib.sha256(f"v{VERSION}".encode())
    files: list[Path] = []
    for root, pattern in ((paths.metrics_dir, "*.y*ml"), (paths.models_dir, "*.yml"), (paths.seeds_dir, "*.yml")):
        if root.is_dir():
            files += [p for p in root.rglob(pattern) if paths.generated_dir not in p.parents]
    for path in sorted(files):
        digest.update(path.relative_to(paths.root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for path in _CODE:
        st = path.stat()
        digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def load(paths: ProjectPaths) -> CachedProject | None:
    """The cached metrics when every file still matches, else None."""
    try:
        doc = json.loads(cache_file(paths).read_text(encoding="utf-8"))
        if doc.get("fingerprint") != fingerprint(paths):
            return None
        metrics = {}
        for m in doc["metrics"]:
            measure = CachedMeasure(**m["measure"]) if m.get("measure") else None
            metrics[m["name"]] = CachedMetric(
                name=m["name"], kind=m["kind"], status=m["status"], public=m["public"], grains=tuple(m["grains"]),
                start=dt.date.fromisoformat(m["start"]), dimensions=tuple(m["dimensions"]), fill=m["fill"],
                inputs=tuple(m["inputs"]), measure=measure)
        return CachedProject(metrics)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(paths: ProjectPaths, project) -> None:
    """Write the cache after a full load (best effort: a read-only checkout just stays slower)."""
    try:
        metrics = []
        for m in project.metrics.values():
            if m.status == "archived" and m.kind == "derived":
                return  # its formula must be parsed for every read: no cache for this project
            metrics.append({
                "name": m.name, "kind": m.kind, "status": m.status, "public": m.public, "grains": list(m.grains),
                "start": m.start.isoformat(), "dimensions": list(m.dimensions), "fill": m.fill,
                "inputs": list(m.inputs),
                "measure": {"source": m.measure.source, "timestamp": m.measure.timestamp,
                            "aggregation": m.measure.aggregation} if m.measure else None,
            })
        target = cache_file(paths)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint(paths), "metrics": metrics}), encoding="utf-8")
        tmp.replace(target)
    except OSError:
        pass

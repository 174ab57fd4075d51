"""`metrics diff --values`: how the values of each changed metric move. The old (base ref)
and the new (working tree) definitions are built with real dbt over the last N days into
two scratch schemas of the real warehouse (reading its raw tables), their series are
compared bucket by bucket, and the scratch schemas are dropped, also when a build fails.

Each side is a temporary copy of the dbt project (the side's macros, staging models and
seeds) whose generated models hold only the changed metrics and the inputs they read,
and whose profile points at the scratch schema; the warehouse location stays the real one."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..compiler.writer import compile_project
from ..grains import bucket_of, ceil_to_grain
from ..paths import ProjectPaths
from ..spec.resolved import MetricsProject
from ..validation.project import load_project
from ..warehouse.connection import Warehouse, WarehouseError
from ..warehouse.read import now_utc, series_relation
from .diff import ProjectDiff
from .gitref import export_project

DIFF_TOLERANCE = 1e-9  # relative: float noise between two builds is not a change
EXAMPLES = 5


class ValuesError(RuntimeError):
    """The values could not be compared (warehouse unreachable, dbt failed): the message says why."""


@dataclass
class Stats:
    buckets: int = 0  # keys (bucket, slice) on either side
    differing: int = 0  # relative difference > DIFF_TOLERANCE, or a value on one side only
    max_change: float | None = None  # |new - old| / |old|, where both exist and old != 0
    mean_change: float | None = None  # over those same buckets, unchanged ones included

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class GrainValues:
    grain: str
    all: Stats  # total and slices
    total: Stats  # the total slice only
    in_progress: str  # start of the bucket in progress (compared too)
    examples: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"grain": self.grain, **self.all.as_dict(), "total": self.total.as_dict(),
                "in_progress": self.in_progress, "examples": self.examples}


@dataclass
class MetricValues:
    name: str
    impact: str
    grains: list[GrainValues] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "impact": self.impact, "grains": [g.as_dict() for g in self.grains],
                "notes": self.notes}


@dataclass
class ValuesReport:
    target: str
    days: int
    start: dt.date
    end: dt.date  # exclusive: the day after the one in progress
    metrics: list[MetricValues] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why"

    def as_dict(self) -> dict:
        return {"target": self.target, "days": self.days, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "metrics": [m.as_dict() for m in self.metrics], "skipped": self.skipped}


# ---------------------------------------------------------------------------- comparing

def _iso(ts: dt.datetime) -> str:
    """A bucket start (naive UTC) as JSON gives every timestamp: ISO 8601 with Z."""
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rel(old, new) -> float | None:
    return None if old is None or new is None or old == 0 else abs(new - old) / abs(old)


def _differs(old, new) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(new - old) > DIFF_TOLERANCE * max(abs(old), abs(new), 1e-300)


def _stats(keys, old: dict, new: dict) -> Stats:
    rels = [r for k in keys if (r := _rel(old.get(k), new.get(k))) is not None]
    return Stats(len(keys), sum(_differs(old.get(k), new.get(k)) for k in keys),
                 max(rels) if rels else None, sum(rels) / len(rels) if rels else None)


def compare_grain(grain: str, old: dict, new: dict, in_progress: dt.datetime) -> GrainValues:
    """old/new: {(bucket_start, dimension, dimension_value): value or None}, each side
    filled with its empty-bucket value (_densify) where only the other has the key."""
    keys = sorted(set(old) | set(new), key=lambda k: (k[0], k[1], str(k[2])))
    total = [k for k in keys if k[1] == ""]
    diff = [k for k in keys if _differs(old.get(k), new.get(k))]
    # examples: measurable changes first, the total before slices, the largest first
    rel = {k: _rel(old.get(k), new.get(k)) for k in diff}
    diff.sort(key=lambda k: (rel[k] is None, k[1] != "", -(rel[k] or 0.0)))
    examples = [{"bucket": _iso(k[0]), "slice": f"{k[1]}={k[2]}" if k[1] else "total",
                 "old": old.get(k), "new": new.get(k), "in_progress": k[0] == in_progress} for k in diff[:EXAMPLES]]
    return GrainValues(grain, _stats(keys, old, new), _stats(total, old, new), _iso(in_progress), examples)


# ---------------------------------------------------------------------------- building

def _closure(project: MetricsProject, names: list[str]) -> set[str]:
    """The metrics and every input they read (ratio sides, derived inputs), transitively."""
    out: set[str] = set()
    todo = [n for n in names if n in project.metrics]
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += list(project.metrics[n].inputs)
    return out


def _scratch_copy(dest: Path, side: ProjectPaths, dbt_dir: Path, project: MetricsProject, names: list[str],
                  target: str, schema: str) -> ProjectPaths:
    """A dbt project at `dest` computing only `names`, building into `schema`."""
    for part in ("macros", "models/staging", "seeds"):
        if (side.root / part).is_dir():
            shutil.copytree(side.root / part, dest / part)
    (dest / "dbt_project").mkdir(parents=True)
    shutil.copy(dbt_dir / "dbt_project.yml", dest / "dbt_project" / "dbt_project.yml")
    profiles = yaml.safe_load((dbt_dir / "profiles.yml").read_text(encoding="utf-8"))
    profile = yaml.safe_load((dbt_dir / "dbt_project.yml").read_text(encoding="utf-8")).get("profile", "metrics")
    outputs = (profiles.get(profile) or {}).get("outputs") or {}
    if target not in outputs:
        raise ValuesError(f"dbt_project/profiles.yml has no `{target}` output in profile `{profile}`")
    outputs[target]["schema"] = schema
    (dest / "dbt_project" / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False), encoding="utf-8")
    keep = _closure(project, names)
    subset = dataclasses.replace(project, metrics={k: v for k, v in project.metrics.items() if k in keep})
    paths = ProjectPaths(dest)
    compile_project(paths, subset)
    return paths


def _read(wh: Warehouse, schema: str, relation: str, metric: str, grain: str, start: dt.date,
          end: dt.date) -> dict:
    lo, hi = ceil_to_grain(start, grain), dt.datetime.combine(end, dt.time())
    _, rows = wh.rows(f"select bucket_start, dimension, dimension_value, value from {schema}.{relation} "
                      "where metric = ? and bucket_start >= ? and bucket_start < ?", [metric, lo, hi])
    return {(b, d or "", v): (None if x is None else float(x)) for b, d, v, x in rows}


def _densify(a: dict, b: dict, fill_a, fill_b) -> None:
    """The series is sparse in slices (a slice row exists where rows do): a key absent on
    one side is that side's empty bucket, as a read shows it (0 for counts, else a gap)."""
    for k in set(a) | set(b):
        a.setdefault(k, fill_a)
        b.setdefault(k, fill_b)


def _only_scratch(copy: ProjectPaths, target: str, scratch: str, run_dbt) -> None:
    """Refuse to build when a node would land outside the scratch schemas (a custom
    `generate_schema_name` or a model's own `schema:`): the build must never write, and
    the clean-up never miss, a real schema."""
    import json
    outcome = run_dbt(copy, target, ["parse"], quiet=True)
    if not outcome.ok:
        raise ValuesError("dbt could not parse the scratch copy: " + "; ".join(outcome.failures[:3]))
    manifest = json.loads((copy.dbt_project_dir / "target" / "manifest.json").read_text(encoding="utf-8"))
    outside = sorted({f"{n.get('name')} -> {n.get('schema')}" for n in manifest.get("nodes", {}).values()
                      if n.get("resource_type") in ("model", "seed", "snapshot")
                      and n.get("schema") not in (scratch, f"{scratch}_seeds")})
    if outside:
        raise ValuesError("--values builds only into scratch schemas, but these would land elsewhere (a custom "
                          f"generate_schema_name or schema: config?): {', '.join(outside[:5])}; nothing built")


def _drop(wh: Warehouse, schema: str) -> None:
    sql = f"drop database if exists {schema} sync" if wh.target == "clickhouse" else f"drop schema if exists {schema} cascade"
    wh.execute(sql)


def compare_values(paths: ProjectPaths, diff: ProjectDiff, target: str, days: int = 14,
                   now: dt.datetime | None = None) -> ValuesReport:
    now = now or now_utc()
    end = now.date() + dt.timedelta(days=1)
    report = ValuesReport(target, days, end - dt.timedelta(days=days), end)
    if diff.base_issues:
        raise ValuesError(f"the base ({diff.base.ref}) does not validate: its definitions cannot be built")
    head = load_project(paths).project
    changed = []
    for d in diff.metrics:
        if d.change != "changed":
            report.skipped.append(f"{d.name}: {d.change} (nothing to compare with)")
        elif d.status == "archived" or d.impact in ("archived", "reactivated"):
            report.skipped.append(f"{d.name}: archived on one side (not built)")
        else:
            changed.append(d)
    if not changed:
        return report
    names = [d.name for d in changed]
    wh = Warehouse(target, paths)
    try:
        wh.ping()
    except WarehouseError as err:
        raise ValuesError(f"{err}; no values compared") from None
    from ..warehouse.dbt_runner import environ, run_dbt
    from ..warehouse.lock import to_stderr, warehouse_lock
    suffix = uuid.uuid4().hex[:8]
    schemas = {side: f"{wh.schema}_diff_{side}_{suffix}" for side in ("old", "new")}
    # the temporary copies resolve the warehouse through these variables: the real one
    env = {"METRICS_DUCKDB_PATH": str(paths.duckdb_path), "METRICS_CHDB_PATH": str(paths.chdb_path)}
    with tempfile.TemporaryDirectory(prefix="metrics-diff-values-") as tmp, environ(env), \
            warehouse_lock(target, paths, on_wait=to_stderr):
        base_paths = export_project(paths.root, diff.base, Path(tmp) / "base")
        old = load_project(base_paths).project
        sides = {"old": (base_paths, old, diff.base.ref), "new": (paths, head, "working tree")}
        try:
            for side, (side_paths, project, label) in sides.items():
                # dbt settings of the working tree: the base's export holds no dbt_project/
                copy = _scratch_copy(Path(tmp) / side, side_paths, paths.dbt_project_dir, project, names, target,
                                     schemas[side])
                with contextlib.redirect_stdout(sys.stderr):  # dbt prints its errors: keep stdout the report
                    _only_scratch(copy, target, schemas[side], run_dbt)
                    outcome = run_dbt(copy, target, ["build"], window=(report.start, report.end), quiet=True)
                if not outcome.ok:
                    raise ValuesError(f"dbt failed building the {side} definitions ({label}) on {target}: "
                                      + "; ".join(outcome.failures[:3])
                                      + " (are the raw tables loaded? `metrics demo-data` writes demo rows); "
                                      "scratch schemas dropped")
            for d in changed:
                report.metrics.append(_compare_metric(wh, schemas, old.metrics[d.name], head.metrics[d.name], d.impact,
                                                      report, now))
        except WarehouseError as err:
            raise ValuesError(f"{err}; scratch schemas dropped") from None
        finally:
            for schema in schemas.values():
                for name in (schema, f"{schema}_seeds"):  # dbt_project.yml: seeds go to +schema: seeds
                    try:
                        _drop(wh, name)
                    except WarehouseError as err:
                        print(f"warning: could not drop scratch schema {name}: {err}", file=sys.stderr)
    return report


def _compare_metric(wh: Warehouse, schemas: dict, old, new, impact: str, report: ValuesReport,
                    now: dt.datetime) -> MetricValues:
    out = MetricValues(new.name, impact)
    for grain in [g for g in new.grains if g in old.grains]:
        a = _read(wh, schemas["old"], series_relation(old, grain), old.name, grain, report.start, report.end)
        b = _read(wh, schemas["new"], series_relation(new, grain), new.name, grain, report.start, report.end)
        current = bucket_of(now, grain)
        _densify(a, b, old.fill, new.fill)
        out.grains.append(compare_grain(grain, a, b, current))
    for g in new.grains:
        if g not in old.grains:
            out.notes.append(f"{g}: a new grain, nothing to compare with")
    for g in old.grains:
        if g not in new.grains:
            out.notes.append(f"{g}: removed in the working tree")
    return out


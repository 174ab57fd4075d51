"""`metrics prune [--apply]`: rows in the rollup tables, and in `metric_anomalies`, of
metrics the project no longer defines (a metric file deleted or renamed) or of a
dimension a metric no longer has, and in `metric_anomalies` the rows of a metric no
longer scored at a grain (its `anomaly.enabled` turned off, or the grain removed). dbt
never deletes them: the rollup materialization rewrites only the windows of the metrics
its model still computes, and a scoring run replaces only the rows of metrics it scores
(`metrics anomalies` listed a removed metric's detections it then called unknown, a
disabled metric's old detections, and a removed dimension's slices)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from ..paths import ProjectPaths
from ..printable import one_line
from ..warehouse.anomaly_store import TABLE as ANOMALIES
from ..warehouse.connection import Warehouse, WarehouseError


@dataclass(frozen=True)
class Stale:
    """Rows to prune: of a metric no longer defined, or only those of one `grain` or one
    `dimension` of a defined one."""
    table: str
    metric: str
    rows: int
    grain: str | None = None
    dimension: str | None = None

    @property
    def why(self) -> str:
        if self.grain is not None:
            return (f"at the {self.grain} grain, where the metric is no longer scored (anomaly.enabled is off, "
                    f"or it has no {self.grain} grain)")
        if self.dimension is not None:
            return f"of the dimension `{one_line(self.dimension)}`, which the metric no longer has"
        return "of a metric no longer defined"


# scratch tables the rollup materializations leave behind when a run dies half-way
_SCRATCH_SUFFIXES = ("__staged", "__scratch", "__dbt_tmp", "__dbt_backup")


def rollup_tables(wh: Warehouse, anomalies: bool = False) -> list[str]:
    """The rollup tables (relations named rollup_* that are tables) in the dbt schema;
    `anomalies`: and metric_anomalies, when it exists."""
    if wh.target == "clickhouse":
        sql = "select name from system.tables where database = ? and engine not like '%View'"
    else:
        sql = "select table_name as name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE'"
    names = [str(n) for n in wh.frame(sql, [wh.schema])["name"]]
    rollups = sorted(n for n in names if n.startswith("rollup_") and not n.endswith(_SCRATCH_SUFFIXES))
    return rollups + ([ANOMALIES] if anomalies and ANOMALIES in names else [])


def cmd_prune(args, paths: ProjectPaths) -> int:
    from ..validation.project import load_project
    result = load_project(paths)
    if result.issues:
        for issue in result.issues:
            print(issue, file=sys.stderr)
        # a metric whose file does not load would look removed: never prune then
        print(f"error: {len(result.issues)} problem(s) in the metric files: nothing pruned", file=sys.stderr)
        return 1
    project = result.project
    # every metric with a definition, hidden inline ratio sides (`<ratio>__numerator`) included
    built = {m.name for m in project.built()}
    archived = {name for name, m in project.metrics.items() if not m.is_built}
    keep = built | (set() if args.include_archived else archived)
    # the (metric, grain) pairs a scoring run writes: active metrics and drafts (`metrics
    # run --include-drafts`) whose detection is on, at each of their grains
    scored = {(m.name, g) for m in project.metrics.values()
              if m.public and m.anomaly.enabled and m.status in ("active", "draft") for g in m.grains}
    # the dimensions each metric has now (built: the public ones and hidden inline ratio
    # sides, whose rows a rollup table holds too)
    dimensions = {m.name: set(m.dimensions) for m in project.built()}
    wh = Warehouse(args.target, paths)
    try:
        tables = rollup_tables(wh, anomalies=True)
        found: list[Stale] = []
        kept: list[tuple[str, str, int]] = []
        for table in tables:
            anomalies = table == ANOMALIES
            keys = "metric, grain, dimension" if anomalies else "metric, dimension"
            counts = wh.frame(f"select {keys}, count(*) as n from {wh.relation(table)} group by {keys} order by {keys}")
            if not anomalies:
                counts["grain"] = ""
            whole: dict[str, int] = {}
            by_grain: dict[tuple[str, str], int] = {}
            by_dimension: dict[tuple[str, str], int] = {}
            for metric, grain, dimension, n in zip(counts["metric"], counts["grain"], counts["dimension"], counts["n"]):
                metric, grain, dimension, n = str(metric), str(grain), str(dimension or ""), int(n)
                whole[metric] = whole.get(metric, 0) + n
                if metric not in keep or metric in archived:
                    continue
                if anomalies and (metric, grain) not in scored:
                    by_grain[metric, grain] = by_grain.get((metric, grain), 0) + n
                elif dimension and dimension not in dimensions.get(metric, {dimension}):  # (unbuilt: kept)
                    by_dimension[metric, dimension] = by_dimension.get((metric, dimension), 0) + n
            for metric, n in whole.items():
                if metric not in keep:
                    found.append(Stale(table, metric, n))
                elif metric in archived:
                    kept.append((table, metric, n))
            found += [Stale(table, m, n, grain=g) for (m, g), n in by_grain.items()]
            found += [Stale(table, m, n, dimension=d) for (m, d), n in by_dimension.items()]
        if not found:
            print(f"{args.target}: nothing to prune: every metric in the {len(tables)} rollup and anomaly table(s) "
                  "is defined, with the dimensions it has, and scored where it has anomaly rows")
        for f in found:
            print(f"{wh.relation(f.table)}: {f.metric}: {f.rows:,} row(s) {f.why}")
        for table, metric, n in kept:
            print(f"{wh.relation(table)}: {metric}: {n:,} row(s) kept (archived: `metrics series` still reads them; "
                  f"--include-archived prunes them too)")
        if not found:
            return 0
        total = sum(f.rows for f in found)
        if not args.apply:
            print(f"{total:,} row(s) of {len({f.metric for f in found})} metric(s) in "
                  f"{len({f.table for f in found})} table(s): run with --apply to delete them")
            return 0
        for table in sorted({f.table for f in found}):
            names = [f.metric for f in found if f.table == table and f.grain is None and f.dimension is None]
            if names:
                wh.execute(f"delete from {wh.relation(table)} where metric in ({', '.join('?' for _ in names)})", names)
            for f in (f for f in found if f.table == table and (f.grain is not None or f.dimension is not None)):
                column, key = ("grain", f.grain) if f.grain is not None else ("dimension", f.dimension)
                wh.execute(f"delete from {wh.relation(table)} where metric = ? and {column} = ?", [f.metric, key])
        print(f"deleted {total:,} row(s) on {args.target}")
    except WarehouseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0

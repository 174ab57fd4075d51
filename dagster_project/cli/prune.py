"""`metrics prune [--apply]`: rows in the rollup tables, and in `metric_anomalies`, of
metrics the project no longer defines (a metric file deleted or renamed). dbt never
deletes them: the rollup materialization rewrites only the windows of the metrics its
model still computes, and a scoring run replaces only the rows of metrics it scores
(`metrics anomalies` listed a removed metric's detections it then called unknown)."""
from __future__ import annotations

import sys

from ..paths import ProjectPaths
from ..warehouse.anomaly_store import TABLE as ANOMALIES
from ..warehouse.connection import Warehouse, WarehouseError

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
    wh = Warehouse(args.target, paths)
    try:
        tables = rollup_tables(wh, anomalies=True)
        found: list[tuple[str, str, int]] = []  # (table, metric, rows)
        kept: list[tuple[str, str, int]] = []
        for table in tables:
            counts = wh.frame(f"select metric, count(*) as n from {wh.relation(table)} group by metric order by metric")
            for metric, n in zip(counts["metric"], counts["n"]):
                row = (table, str(metric), int(n))
                if row[1] not in keep:
                    found.append(row)
                elif row[1] in archived:
                    kept.append(row)
        if not found:
            print(f"{args.target}: nothing to prune: every metric in the {len(tables)} rollup and anomaly table(s) "
                  "is defined")
        for table, metric, n in found:
            print(f"{wh.relation(table)}: {metric}: {n:,} row(s) of a metric no longer defined")
        for table, metric, n in kept:
            print(f"{wh.relation(table)}: {metric}: {n:,} row(s) kept (archived: `metrics series` still reads them; "
                  f"--include-archived prunes them too)")
        if not found:
            return 0
        total = sum(n for _, _, n in found)
        if not args.apply:
            print(f"{total:,} row(s) of {len({m for _, m, _ in found})} metric(s) in {len({t for t, _, _ in found})} "
                  f"table(s): run with --apply to delete them")
            return 0
        for table in sorted({t for t, _, _ in found}):
            names = [m for t, m, _ in found if t == table]
            wh.execute(f"delete from {wh.relation(table)} where metric in ({', '.join('?' for _ in names)})", names)
        print(f"deleted {total:,} row(s) on {args.target}")
    except WarehouseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0

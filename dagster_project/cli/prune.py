"""`metrics prune [--apply]`: rows in the rollup tables, and in `metric_anomalies`, of
metrics the project no longer defines (a metric file deleted or renamed), and in
`metric_anomalies` the rows of a metric no longer scored at a grain (its `anomaly.enabled`
turned off, or the grain removed). dbt never deletes them: the rollup materialization
rewrites only the windows of the metrics its model still computes, and a scoring run
replaces only the rows of metrics it scores (`metrics anomalies` listed a removed
metric's detections it then called unknown, and a disabled metric's old detections)."""
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
    # the (metric, grain) pairs a scoring run writes: active metrics and drafts (`metrics
    # run --include-drafts`) whose detection is on, at each of their grains
    scored = {(m.name, g) for m in project.metrics.values()
              if m.public and m.anomaly.enabled and m.status in ("active", "draft") for g in m.grains}
    wh = Warehouse(args.target, paths)
    try:
        tables = rollup_tables(wh, anomalies=True)
        found: list[tuple[str, str, str | None, int]] = []  # (table, metric, grain of an unscored pair, rows)
        kept: list[tuple[str, str, int]] = []
        for table in tables:
            counts = wh.frame(f"select metric, count(*) as n from {wh.relation(table)} group by metric order by metric")
            for metric, n in zip(counts["metric"], counts["n"]):
                if str(metric) not in keep:
                    found.append((table, str(metric), None, int(n)))
                elif str(metric) in archived:
                    kept.append((table, str(metric), int(n)))
            if table == ANOMALIES:
                pairs = wh.frame(f"select metric, grain, count(*) as n from {wh.relation(table)} "
                                 "group by metric, grain order by metric, grain")
                found += [(table, str(m), str(g), int(n)) for m, g, n in zip(pairs["metric"], pairs["grain"], pairs["n"])
                          if str(m) in built and str(m) not in archived and (str(m), str(g)) not in scored]
        if not found:
            print(f"{args.target}: nothing to prune: every metric in the {len(tables)} rollup and anomaly table(s) "
                  "is defined, and scored where it has anomaly rows")
        for table, metric, grain, n in found:
            if grain is None:
                print(f"{wh.relation(table)}: {metric}: {n:,} row(s) of a metric no longer defined")
            else:
                print(f"{wh.relation(table)}: {metric}: {n:,} row(s) at the {grain} grain, where the metric is no "
                      f"longer scored (anomaly.enabled is off, or it has no {grain} grain)")
        for table, metric, n in kept:
            print(f"{wh.relation(table)}: {metric}: {n:,} row(s) kept (archived: `metrics series` still reads them; "
                  f"--include-archived prunes them too)")
        if not found:
            return 0
        total = sum(n for *_, n in found)
        if not args.apply:
            print(f"{total:,} row(s) of {len({m for _, m, _, _ in found})} metric(s) in "
                  f"{len({t for t, *_ in found})} table(s): run with --apply to delete them")
            return 0
        for table in sorted({t for t, *_ in found}):
            names = [m for t, m, g, _ in found if t == table and g is None]
            if names:
                wh.execute(f"delete from {wh.relation(table)} where metric in ({', '.join('?' for _ in names)})", names)
            for _, metric, grain, _ in (f for f in found if f[0] == table and f[2] is not None):
                wh.execute(f"delete from {wh.relation(table)} where metric = ? and grain = ?", [metric, grain])
        print(f"deleted {total:,} row(s) on {args.target}")
    except WarehouseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0

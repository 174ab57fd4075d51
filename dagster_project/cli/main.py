"""`metrics ...`: validate, compile, list, read series, load demo data, run the rollups,
prune rows of removed metrics."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from ..compiler.errors import GeneratedWriteError
from ..paths import ProjectPaths
from ..grains import GRAINS
from ..warehouse.connection import TARGETS, Warehouse, WarehouseError, default_target



def _date(text: str) -> dt.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # (fromisoformat takes 20261120 and 2026-W47 too)
            raise ValueError(text)
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD, UTC)") from None
    from ..spec.raw import EARLIEST_DAY, LATEST_DAY  # as metric files' dates (year 9999 has no next bucket)
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise argparse.ArgumentTypeError(f"`{text}`: a date from {EARLIEST_DAY} to {LATEST_DAY}")
    return day


def _count(low: int, high: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"`{text}`: from {low:,} to {high:,}")
        return n
    return parse


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _load(paths: ProjectPaths, only=None):
    from ..validation.project import load_project
    result = load_project(paths, only=only)
    for issue in result.issues:
        print(issue, file=sys.stderr)
    return result


def cmd_validate(args, paths: ProjectPaths) -> int:
    from ..validation.project import METRIC_FILES, metric_files
    t0 = time.perf_counter()
    only = [Path(p) for p in args.paths]
    for p in only:  # a mistyped path must not read as "valid"
        if not p.exists():
            _err(f"{p}: no such file or folder")
            return 2
        if not metric_files(paths, [p]):
            _err(f"{p}: no metric file there (metric files are "
                 f"{METRIC_FILES.format(dir=paths.relative(paths.metrics_dir))})")
            return 2
    result = _load(paths, only=only or None)
    extra = " and alerts.yml" if (paths.root / "alerts.yml").exists() else ""
    if result.issues:
        print(f"{len(result.issues)} problem(s) in {result.files} metric file(s){extra}", file=sys.stderr)
        return 1
    if only:  # the other files were read for references only: their problems are not shown
        print(f"{len(metric_files(paths, only))} of {result.files} metric file(s){extra} valid "
              f"({time.perf_counter() - t0:.2f}s)")
    else:
        print(f"{result.files} metric file(s){extra} valid ({time.perf_counter() - t0:.2f}s)")
    return 0


def cmd_schema(args, paths: ProjectPaths) -> int:
    from ..spec.schema import ALERTS_SCHEMA, render_alerts_schema, render_schema
    stale = 0
    for target, text in ((paths.schema_file, render_schema()), (paths.root / ALERTS_SCHEMA, render_alerts_schema())):
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if args.check:
            if current != text:
                _err(f"{paths.relative(target)} is stale: run `metrics schema`")
                stale += 1
            else:
                print(f"{paths.relative(target)} is current")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {paths.relative(target)}")
    return 1 if stale else 0


def cmd_compile(args, paths: ProjectPaths) -> int:
    from ..compiler.writer import compile_project
    result = _load(paths)
    if result.issues:
        _err(f"{len(result.issues)} problem(s): nothing compiled")
        return 1
    out = compile_project(paths, result.project, check=args.check)
    rel = paths.relative(paths.generated_dir)
    if args.check:
        if out.changed:
            for f in out.written:
                print(f"stale: {rel}/{f}", file=sys.stderr)
            for f in out.removed:
                print(f"not generated any more: {rel}/{f}", file=sys.stderr)
            _err("generated models differ from the metric YAML: run `metrics compile` and commit the result")
            return 1
        print(f"{rel}/ is current ({out.unchanged} files)")
        return 0
    for f in out.written:
        print(f"wrote {rel}/{f}")
    for f in out.removed:
        print(f"removed {rel}/{f}")
    print(f"{len(out.written)} written, {len(out.removed)} removed, {out.unchanged} unchanged")
    return 0


def cmd_list(args, paths: ProjectPaths) -> int:
    result = _load(paths)
    if result.issues:
        return 1
    metrics = [m.describe() for m in result.project.public()]
    if args.format == "json":
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{'name':32} {'kind':8} {'status':8} {'grains':22} {'start':10} {'empty':5} dimensions")
        for m in metrics:
            empty = "NULL" if m["empty_bucket_value"] is None else f"{m['empty_bucket_value']:g}"
            print(f"{m['name']:32} {m['kind']:8} {m['status']:8} {','.join(m['grains']):22} {m['start']:10} "
                  f"{empty:5} {','.join(m['dimensions'])}")
    return 0


def cmd_series(args, paths: ProjectPaths) -> int:
    from ..validation import read_cache
    from ..warehouse.read import NotBuiltError, series_records
    from . import format as fmt
    if args.slice and len(args.slice) > 1:  # a series is the total or one slice: the last one silently won
        _err(f"--slice takes one slice; given {len(args.slice)}: {', '.join(args.slice)}")
        return 2
    project = read_cache.load(paths)  # None unless every file matches the last full load
    if project is None:
        result = _load(paths)
        if result.issues:
            return 1
        project = result.project
        read_cache.store(paths, project)
    metric = project.metrics.get(args.name)
    if metric is None or not metric.public:
        from ..validation.issues import closest
        _err(f"unknown metric `{args.name}`{closest(args.name, [m.name for m in project.public()])}")
        return 2
    slice_ = {}
    for item in args.slice or []:
        if "=" not in item:
            _err(f"--slice takes DIMENSION=VALUE, got `{item}`")
            return 2
        k, v = item.split("=", 1)
        slice_[k] = v
    try:
        records = series_records(Warehouse(args.target, paths), metric, args.grain, args.start, args.end, slice_, project)
    except NotBuiltError as err:
        _err(err.with_command(_exe(paths, "metrics")))
        return 2
    except (ValueError, WarehouseError) as err:
        _err(str(err))
        return 2
    rows = fmt.series_rows(records)
    {"json": fmt.write_json, "csv": fmt.write_csv, "table": fmt.write_table}[args.format](rows, sys.stdout)
    return 0


def cmd_demo_data(args, paths: ProjectPaths) -> int:
    from ..demo.generator import TIME_COLUMNS, generate_day
    end = args.end or (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1))
    start = end - dt.timedelta(days=args.days)
    wh = Warehouse(args.target, paths)
    counts = {k: 0 for k in TIME_COLUMNS}
    t0 = time.perf_counter()
    try:
        day = start
        with wh.lock(on_wait=lambda msg: print(msg, file=sys.stderr, flush=True)):  # one writer at a time
            while day < end:
                frames = generate_day(day, args.seed, args.events_per_day, first_day=start)
                nxt = day + dt.timedelta(days=1)
                for table, frame in frames.items():
                    wh.replace_rows(table, frame, TIME_COLUMNS[table], day, nxt)
                    counts[table] += len(frame)
                done = (day - start).days + 1
                if done % 10 == 0 or nxt == end:
                    print(f"  demo data: {done}/{args.days} days written", flush=True)
                day = nxt
    except WarehouseError as err:
        _err(str(err))
        return 1
    print(f"wrote {', '.join(f'{n:,} {t}' for t, n in counts.items())} for {start} .. {end - dt.timedelta(days=1)} "
          f"into {args.target} schema raw ({time.perf_counter() - t0:.1f}s)")
    return 0


def _exe(paths: ProjectPaths, name: str) -> str:
    """This environment's `name` script as typed from the project root: relative when the
    virtualenv lives inside the project (.venv/bin/metrics), else absolute."""
    exe = Path(sys.prefix) / "bin" / name
    if not exe.exists():
        return name  # installed elsewhere: assume it is on PATH
    try:
        return str(exe.relative_to(paths.root))
    except ValueError:
        return str(exe)


def _check_run_metrics(args, project) -> bool:
    """Every --metric must name a metric this run builds: checked before anything is
    compiled or run, so a typo changes nothing."""
    from ..validation.issues import closest
    ok = True
    for name in args.metric or []:
        metric = project.metrics.get(name)
        if metric is None or not metric.public:
            _err(f"unknown metric `{name}`{closest(name, [m.name for m in project.public()])}: nothing built")
            ok = False
        elif metric.status == "archived":
            _err(f"`{name}` is archived: it is not built any more (`metrics series` still reads its history): nothing built")
            ok = False
        elif metric.status == "draft" and not args.include_drafts:
            _err(f"`{name}` is a draft: pass --include-drafts to build it (drafts are built only on demand): nothing built")
            ok = False
    return ok


def _closing_hints(args, paths: ProjectPaths, project) -> list[str]:
    """Commands that work as printed from the project root, about a metric of this project."""
    metrics = _exe(paths, "metrics")
    target = f" --target {args.target}" if args.target != "duckdb" else ""
    named = project.metrics[args.metric[0]] if args.metric else next(
        (m for m in project.public() if m.status == "active"), None)
    if named is not None:
        grain = "day" if "day" in named.grains else named.grains[0]
        series = f"{metrics} series {named.name} --grain {grain}{target}"
    else:
        series = f"{metrics} series NAME --grain day{target}   (no active metric yet; names: {metrics} list)"
    dagster = f"{_exe(paths, 'dagster')} dev -w workspace.yaml"
    home = os.environ.get("DAGSTER_HOME")
    if home:
        ui = [f"open the UI:    DAGSTER_HOME={Path(home).resolve()} {dagster}"]
    else:
        home = paths.root / ".dagster_home"
        copy = f" && cp dagster_home.yaml {home}/dagster.yaml" if (paths.root / "dagster_home.yaml").exists() else ""
        ui = ["open the UI:    DAGSTER_HOME is not set (this run is not in the UI's history); set it, then start the UI:",
              f"                export DAGSTER_HOME={home} && mkdir -p $DAGSTER_HOME{copy}",
              f"                {dagster}"]
    anomalies = f"list anomalies: {metrics} anomalies{target}   (--format json, --all, --metric NAME, --grain hour)"
    scored = any(m.anomaly.enabled for m in project.metrics.values() if m.status == "active" and m.public)
    return [f"read a series:  {series}", *([anomalies] if scored else []), *ui]


def report_outcome(outcome, what: str) -> bool:
    """Print a run's failures (and say that unfinished windows are unchanged) or its runs."""
    if not outcome.ok:
        for f in outcome.failures:
            _err(f)
        _err(f"{what} failed; rows of windows that did not finish are unchanged")
        if getattr(outcome, "failed_run", None):
            if os.environ.get("DAGSTER_HOME"):
                kept = "in the Dagster UI's history"
            elif outcome.trace_file is not None:
                kept = f"{outcome.trace_file} (DAGSTER_HOME is not set: the run is not in the UI's history)"
            else:
                kept = "not kept (DAGSTER_HOME is not set)"
            _err(f"the failed Dagster run {outcome.failed_run}, with the stack trace: {kept}")
        return False
    if outcome.run_ids:
        print(f"done: {len(outcome.run_ids)} Dagster run(s): {', '.join(outcome.run_ids)}")
    else:  # e.g. `metrics run --metric DRAFT --include-drafts`: drafts are built by dbt directly
        print("done: no Dagster run was needed")
    return True


def scoring_threads_ok() -> bool:
    """Whether METRICS_SCORING_THREADS is unset or valid; else says so. Read again when
    the anomaly steps score: checked before a run builds anything."""
    from ..anomaly.parallel import scoring_threads
    try:
        scoring_threads()
    except ValueError as exc:
        _err(f"{exc}: nothing built")
        return False
    return True


def cmd_run(args, paths: ProjectPaths) -> int:
    from ..compiler.writer import compile_project
    if not scoring_threads_ok():
        return 2
    print("[1/3] validating metrics", flush=True)
    result = _load(paths)
    if result.issues:
        _err(f"{len(result.issues)} problem(s): nothing built")
        return 1
    if not _check_run_metrics(args, result.project):
        return 2
    print("[2/3] compiling dbt models", flush=True)
    out = compile_project(paths, result.project)
    print(f"      {len(out.written)} written, {out.unchanged} unchanged", flush=True)
    if args.start is not None and out.written:
        # a changed definition rebuilt over part of its history: scoring compares the window
        # with buckets the earlier definition built (a max made a min reads as a drop)
        print(f"      note: {len(out.written)} generated model(s) changed and this run builds from {args.start} on: "
              "earlier buckets keep what an earlier build left (`metrics diff REF` says whether the change needs "
              "a backfill: `metrics backfill --from-diff REF`)", flush=True)
    try:
        Warehouse(args.target, paths).ping()
    except WarehouseError as err:
        _err(f"{err}; nothing built")
        return 1
    span = f"{args.start or 'each metric start'} .. {args.end or 'now'}"
    print(f"[3/3] running the rollup asset jobs on {args.target} for {span}", flush=True)
    from ..defs.runner import run_window
    try:
        outcome = run_window(paths, args.target, args.start, args.end, result.project, metrics=args.metric)
        if outcome.ok and args.include_drafts:
            print("      draft metrics (dbt, on demand) ...", flush=True)
            from ..defs.runner import run_drafts
            began = time.perf_counter()
            drafts = run_drafts(paths, args.target, args.start, args.end, result.project)
            outcome.ok = drafts.ok
            outcome.failures += [f"{args.target}: {f}" for f in drafts.failures]
            if drafts.ok:
                print(f"      draft metrics: {len(drafts.built)} dbt node(s) built in {time.perf_counter() - began:.1f}s",
                      flush=True)
    except WarehouseError as err:  # e.g. the writer lock timed out between two jobs
        _err(f"{err}; the run stopped (each window is replaced in one transaction: an unfinished one is unchanged)")
        return 1
    if outcome.interrupted:
        _err(INTERRUPTED_TEXT)
        return 130
    if not report_outcome(outcome, "the build"):
        return 1
    if args.target == "duckdb":
        drafts = ", drafts in metric_series_draft_<grain>" if args.include_drafts else ""
        print(f"results: {paths.duckdb_path} (schema analytics: metric_series_hour/_day/_week/_month, "
              f"metric_anomalies{drafts})")
    for line in _closing_hints(args, paths, result.project):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metrics", description="Metrics as code: YAML metrics compiled to dbt rollups.")
    p.add_argument("--project-dir", type=Path, help="folder holding metrics/ and dbt_project/ (default: discovered)")
    sub = p.add_subparsers(dest="command", required=True)

    def with_target(sp):
        sp.add_argument("--target", choices=TARGETS, default=default_target(),
                        help="warehouse (dbt target); default: $METRICS_TARGET or duckdb")

    sp = sub.add_parser("validate", help="check metric YAML; file:line for every problem")
    sp.add_argument("paths", nargs="*", help="files or folders to report on (default: all)")
    sp.set_defaults(func=cmd_validate)
    sp = sub.add_parser("schema", help="write the JSON Schemas of metric files and alerts.yml (docs/*.schema.json)")
    sp.add_argument("--check", action="store_true", help="exit 1 when the committed schema is stale")
    sp.set_defaults(func=cmd_schema)
    sp = sub.add_parser("compile", help="write the dbt models for the metrics into models/metrics/")
    sp.add_argument("--check", action="store_true", help="exit 1 when committed models differ")
    sp.set_defaults(func=cmd_compile)
    sp = sub.add_parser("list", help="list metrics")
    sp.add_argument("--format", choices=("table", "json"), default="table")
    sp.set_defaults(func=cmd_list)
    sp = sub.add_parser("series", help="print one metric's series")
    sp.add_argument("name")
    sp.add_argument("--grain", choices=GRAINS, required=True)
    sp.add_argument("--start", type=_date, help="first day (UTC, inclusive)")
    sp.add_argument("--end", type=_date, help="last day (UTC, exclusive)")
    sp.add_argument("--slice", action="append", metavar="DIMENSION=VALUE")
    sp.add_argument("--format", choices=("json", "csv", "table"), default="table")
    with_target(sp)
    sp.set_defaults(func=cmd_series)
    sp = sub.add_parser("demo-data", help="write deterministic demo events into the warehouse (schema raw)")
    sp.add_argument("--days", type=_count(1, 3660), default=90)
    sp.add_argument("--seed", type=int, default=7)
    sp.add_argument("--end", type=_date, help="day after the last demo day (default: tomorrow, UTC)")
    sp.add_argument("--events-per-day", type=_count(1, 10_000_000), default=6_000)
    with_target(sp)
    sp.set_defaults(func=cmd_demo_data)
    sp = sub.add_parser("run", help="the main job: validate, compile and build the rollups for a window")
    sp.add_argument("--start", type=_date, help="first day (UTC, inclusive); default: each metric's start")
    sp.add_argument("--end", type=_date, help="end day (UTC, exclusive); default: now")
    sp.add_argument("--include-drafts", action="store_true", help="also build draft metrics")
    sp.add_argument("--metric", action="append", help="build only this metric (and what it needs)")
    with_target(sp)
    sp.set_defaults(func=cmd_run)
    from .anomalies import add_parser as add_anomalies_parser
    add_anomalies_parser(sub, with_target, _date)
    from .diff import add_parser as add_diff_parser
    add_diff_parser(sub, with_target, _date)
    from .alerts import add_parser as add_alerts_parser
    add_alerts_parser(sub, with_target)
    from .docs import add_parser as add_docs_parser
    add_docs_parser(sub, with_target, _date)
    from .serve import add_parser as add_serve_parser
    add_serve_parser(sub, with_target)
    from .silence import add_parser as add_silence_parser
    add_silence_parser(sub, with_target, _date)
    from .prune import cmd_prune
    sp = sub.add_parser("prune", help="list (--apply: delete) rollup rows of metrics no longer defined, anomaly rows "
                                            "of metrics no longer scored")
    sp.add_argument("--apply", action="store_true", help="delete the rows listed (default: only list them)")
    sp.add_argument("--include-archived", action="store_true",
                    help="also prune archived metrics (default: keep their history readable)")
    with_target(sp)
    sp.set_defaults(func=cmd_prune)
    return p


STOPPED_TEXT = "interrupted (Ctrl-C): stopped"
INTERRUPTED_TEXT = (f"{STOPPED_TEXT}; each window is replaced in one transaction, so one not finished is unchanged "
                    "(run the command again to finish it)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = ProjectPaths(args.project_dir.resolve()) if args.project_dir else ProjectPaths.discover()
    missing = _not_a_project(paths, args.command)
    if missing:
        _err(f"{paths.root} is not a metrics project: it has no {missing} folder (--project-dir or "
             "$METRICS_PROJECT_DIR names the folder holding metrics/ and dbt_project/)")
        return 2
    if getattr(args, "start", None) and getattr(args, "end", None) and args.start >= args.end:
        _err("--start must be before --end")
        return 2
    if getattr(args, "since", None) and getattr(args, "until", None) and args.since >= args.until:
        _err("--since must be before --until")
        return 2
    try:
        code = args.func(args, paths)
        sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's final flush
        return code
    except KeyboardInterrupt:
        # the transaction sentence only where the command writes windows of rows
        _err(INTERRUPTED_TEXT if args.command in ("run", "demo-data") else STOPPED_TEXT)
        return 130
    except GeneratedWriteError as err:
        _err(str(err))
        return 1
    except BrokenPipeError:
        # the reader stopped early (`metrics series ... | head`): not a failure. Point
        # stdout at devnull so nothing tries to write the rest at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# the commands that write dbt's models or run dbt (the others need the metric files only)
_DBT_COMMANDS = ("compile", "run", "diff", "backfill", "demo-data")


def _not_a_project(paths: ProjectPaths, command: str) -> str | None:
    """The folder a command needs and the project lacks (a typo in --project-dir passed
    `validate` on 0 files, and `run` created a warehouse there, then failed in dbt)."""
    if not paths.metrics_dir.is_dir():
        return "metrics/"
    if command in _DBT_COMMANDS and not paths.dbt_project_dir.is_dir():
        return "dbt_project/"
    return None


def entry() -> int:
    """The `metrics` command: main(), then Ctrl-C ignored while the interpreter exits (a
    second Ctrl-C there, or while the first was being handled, killed the process by
    SIGINT instead of exit 130; the exit also waits for an interrupted dbt to stop). A
    command a Ctrl-C does not stop in time is ended (interrupt_watchdog.py)."""
    from . import interrupt_watchdog
    interrupt_watchdog.arm(f"{STOPPED_TEXT}: it had not ended {interrupt_watchdog.GRACE_SECONDS:.0f} s after the "
                           "Ctrl-C, so it was ended there (a window being replaced is unchanged: one transaction)")
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(entry())

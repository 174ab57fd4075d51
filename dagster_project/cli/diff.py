"""`metrics diff --base REF`: what a change to the metric YAML does to the warehouse
(metrics added, removed, changed; breaking or not; the generated SQL diff; the backfill
plan; with --values, how the changed metrics' values move over the last N days), and
`metrics backfill --from-diff REF`: launch exactly that plan through Dagster."""
from __future__ import annotations

import sys


def add_parser(sub, with_target, date_type) -> None:
    sp = sub.add_parser("diff", help="metrics added/removed/changed against a git ref, SQL diff and backfill plan")
    sp.add_argument("--base", required=True, metavar="REF", help="git ref to compare the working tree with (origin/main)")
    sp.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    sp.add_argument("--values", action="store_true",
                    help="build the old and new definitions of each changed metric in scratch schemas and compare values")
    sp.add_argument("--days", type=_days, metavar="N", help="with --values: the last N UTC days (default 14)")
    with_target(sp)
    sp.set_defaults(func=cmd_diff, target=None)  # None: not given ($METRICS_TARGET or duckdb, with --values)
    sp = sub.add_parser("backfill", help="launch the backfill plan of `metrics diff` through Dagster (one run per grain)")
    sp.add_argument("--from-diff", required=True, metavar="REF", help="git ref the plan is computed against")
    sp.add_argument("--dry-run", action="store_true", help="print the plan, launch nothing")
    with_target(sp)
    sp.set_defaults(func=cmd_backfill)


def _days(text: str) -> int:
    import argparse
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 366:
        raise argparse.ArgumentTypeError(f"--days takes a whole number of days from 1 to 366, got `{text}`")
    return n


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _diff(paths, ref: str):
    from ..pr.diff import DiffError, diff_against
    from ..pr.gitref import GitError
    try:
        return diff_against(paths, ref)
    except (GitError, DiffError) as err:
        _err(str(err))
        return None


def cmd_diff(args, paths) -> int:
    from ..pr.render import RENDERERS
    for flag, given in (("--days", args.days is not None), ("--target", args.target is not None)):
        if given and not args.values:  # without --values nothing is built: the flag would be silently ignored
            _err(f"{flag} is for --values (building the old and new definitions to compare their values)")
            return 2
    result = _diff(paths, args.base)
    if result is None:
        return 2
    for issue in result.base_issues:
        print(f"warning: {args.base}: {issue}", file=sys.stderr)
    values = None
    if args.values:  # only here: without --values no warehouse and no dbt are touched
        from ..pr.values import ValuesError, compare_values
        from ..warehouse.connection import TARGETS, WarehouseError, default_target
        target = args.target or default_target()
        if target not in TARGETS:  # $METRICS_TARGET: the flag's choices never saw it
            _err(f"unknown target `{target}` in $METRICS_TARGET (choose from {', '.join(TARGETS)})")
            return 2
        try:
            values = compare_values(paths, result, target, args.days or 14)
        except (ValuesError, WarehouseError) as err:  # WarehouseError: e.g. the writer lock timed out
            _err(str(err))
            return 2
    sys.stdout.write(RENDERERS[args.format](result, values))
    return 0


def cmd_backfill(args, paths) -> int:
    from ..compiler.writer import compile_project
    from ..pr.render import _plan_text
    from ..validation.project import load_project
    from ..warehouse.connection import Warehouse, WarehouseError
    result = _diff(paths, args.from_diff)
    if result is None:
        return 2
    for line in _plan_text(result):
        print(line)
    plan = result.plan
    if plan.empty or args.dry_run:
        return 0
    from .main import scoring_threads_ok
    if not scoring_threads_ok():
        return 2
    project = load_project(paths).project
    out = compile_project(paths, project)
    if out.changed:
        print(f"compiled models/metrics/: {len(out.written)} written, {len(out.removed)} removed")
    try:
        Warehouse(args.target, paths).ping()
    except WarehouseError as err:
        _err(f"{err}; nothing built")
        return 1
    from ..defs.runner import run_window
    print(f"backfilling {', '.join(plan.metrics)} on {args.target} from {plan.start}", flush=True)
    try:
        outcome = run_window(paths, args.target, plan.start, None, project, metrics=plan.metrics, catalog=True)
    except WarehouseError as err:  # e.g. the writer lock timed out between two jobs
        _err(f"{err}; the backfill stopped (an unfinished window is unchanged)")
        return 1
    from .main import report_outcome
    return 0 if report_outcome(outcome, "the backfill") else 1

"""`metrics anomalies`: the scored buckets in metric_anomalies (flagged only by default),
and `--backtest`: the detector replayed over stored history with other settings, so an
owner tunes a metric before enabling its alerts."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import sys

from ..grains import GRAINS, bucket_of, floor_to_grain
from .format import csv_cell
from ..printable import as_typed, one_line, slice_text

BACKTEST_DAYS = 90
MAX_BACKTEST_DAYS = 36_525  # a century: further back than any metric's start

FIELDS = ["metric", "grain", "bucket_start", "slice", "dimension", "dimension_value", "value", "expected", "lower",
          "upper", "score", "is_anomaly", "direction", "provisional", "numerator", "denominator", "model", "reason",
          "chart_path", "run_id", "computed_at"]


def add_parser(sub, with_target, date_type) -> None:
    sp = sub.add_parser("anomalies", help="list detected anomalies (--backtest: replay the detector with other settings)")
    sp.add_argument("--metric", action="append", help="only this metric (repeatable)")
    sp.add_argument("--grain", choices=GRAINS)
    sp.add_argument("--since", type=date_type, help="first day (UTC, inclusive)")
    sp.add_argument("--until", type=date_type, help="end day (UTC, exclusive)")
    sp.add_argument("--slice", metavar="DIMENSION=VALUE", action="append",
                    help="one slice (`total` for the total only)")
    sp.add_argument("--all", action="store_true", help="every scored bucket, not only the flagged ones")
    sp.add_argument("--format", choices=("json", "csv", "table"), default="table")
    sp.add_argument("--backtest", action="store_true",
                    help="replay the detector over --days of stored history for one --metric; writes nothing")
    sp.add_argument("--sensitivity", type=float, nargs="+", action="extend", metavar="S",
                    help="backtest: the sensitivities to try (`--sensitivity 2.5 3 4`, or the flag repeated)")
    sp.add_argument("--days", type=int, help=f"backtest: days of history replayed (default {BACKTEST_DAYS})")
    with_target(sp)
    sp.set_defaults(func=cmd_anomalies)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _check_metrics(names: list[str], grain: str | None, project) -> bool:
    from ..validation.issues import closest
    public = [m.name for m in project.public()]
    for name in names:
        if name not in public:
            _err(f"unknown metric `{name}`{closest(name, public)}")
            return False
        if grain and grain not in project.metrics[name].grains:
            _err(f"`{name}` has no {grain} grain (its grains: {', '.join(project.metrics[name].grains)})")
            return False
    return True


def _slice(text: str | None) -> tuple[str | None, str | None] | None:
    if text is None:
        return None, None
    if text == "total":
        return "", ""
    if "=" not in text:
        _err(f"--slice takes DIMENSION=VALUE (or `total`), got `{text}`")
        return None
    dimension, value = text.split("=", 1)
    if not dimension.strip():
        _err(f"--slice takes DIMENSION=VALUE (or `total`): `{text}` names no dimension")
        return None
    return dimension, value


def cmd_anomalies(args, paths) -> int:
    from ..validation.project import load_project
    from ..warehouse.connection import Warehouse, WarehouseError
    if args.slice and len(args.slice) > 1:  # (the last one would silently win)
        _err(f"--slice takes one slice; given {len(args.slice)}: {', '.join(args.slice)}")
        return 2
    args.slice = args.slice[0] if args.slice else None
    args.metric = list(dict.fromkeys(args.metric)) if args.metric else None  # a repeated name lists its rows once
    result = load_project(paths)
    if result.issues and not args.backtest:
        # the stored rows do not depend on the files: a half-edited tree must not hide them
        print(f"warning: {len(result.issues)} problem(s) in the metric files (`metrics validate` lists them); "
              "listing the stored rows anyway", file=sys.stderr)
    elif result.issues:
        for issue in result.issues:
            print(issue, file=sys.stderr)
        return 1
    wh = Warehouse(args.target, paths)
    # a listing also takes a metric no longer defined (renamed, deleted) whose rows are
    # stored: they can be read before `metrics prune` removes them
    public = {m.name for m in result.project.public()} if result.project is not None else set()
    defined = result.project is not None and (args.backtest or all(m in public for m in args.metric or []))
    # (the defined names are checked either way; their grains for a backtest only: a grain
    # a metric no longer has keeps its stored rows until `metrics prune`, and they list)
    named = (args.metric or []) if defined else [m for m in args.metric or [] if m in public]
    if result.project is not None and not _check_metrics(named, args.grain if args.backtest else None,
                                                         result.project):
        return 2
    # a grain a named metric does not have now: listed from its stored rows, if any
    gone = {m: result.project.metrics[m].grains for m in named
            if args.grain and args.grain not in result.project.metrics[m].grains} if result.project else {}
    try:
        if args.backtest:
            return _backtest(args, wh, result.project)
        return _list(args, wh, checked=defined, gone=gone)
    except (ValueError, WarehouseError) as err:
        _err(str(err))
        return 2


def _list(args, wh, checked: bool = True, gone: dict | None = None) -> int:
    from ..warehouse.anomaly_store import TABLE, read_anomalies
    for flag, given in (("--sensitivity", args.sensitivity), ("--days", args.days is not None)):
        if given:
            _err(f"{flag} is for --backtest")
            return 2
    sliced = _slice(args.slice)
    if sliced is None:
        return 2
    since = dt.datetime.combine(args.since, dt.time()) if args.since else None
    until = dt.datetime.combine(args.until, dt.time()) if args.until else None
    if not wh.relation_exists(TABLE):
        _err(f"{wh.target}: nothing has been scored yet ({TABLE} does not exist): `metrics run` scores every grain it builds")
        return 2
    if not checked and args.metric:  # the files could not be read: the names are checked against the stored rows
        _check_scored_metrics(wh, args.metric)
    for name, grains in (gone or {}).items():  # a typo, unless the grain was removed and its rows are kept
        _, found = wh.rows(f"select count(*) from {wh.relation(TABLE)} where metric = ? and grain = ?",
                           [name, args.grain])
        if not int(found[0][0]):
            raise ValueError(f"`{name}` has no {args.grain} grain (its grains: {', '.join(grains)}), "
                             f"nor stored rows of one")
    if sliced[0]:
        sliced = (sliced[0], _check_scored_slice(wh, args.metric, *sliced))
    rows = []
    for metric in args.metric or [None]:
        columns, found = read_anomalies(wh, metric=metric, grain=args.grain, since=since, until=until,
                                        dimension=sliced[0], dimension_value=sliced[1], flagged_only=not args.all)
        rows += [_record(dict(zip(columns, r))) for r in found]
    rows.sort(key=lambda r: (r["bucket_start"], r["metric"], r["grain"], r["dimension"], r["dimension_value"]),
              reverse=True)
    {"json": _json, "csv": _csv, "table": _table}[args.format](rows, args)
    return 0


def _check_scored_metrics(wh, metrics: list[str]) -> None:
    from ..validation.issues import closest
    from ..warehouse.anomaly_store import TABLE
    _, rows = wh.rows(f"select distinct metric from {wh.relation(TABLE)}")
    scored = {str(m) for (m,) in rows}
    for name in metrics:
        if name not in scored:
            raise ValueError(f"no scored row of a metric `{name}`{closest(name, scored)}")


def _check_scored_slice(wh, metrics: list[str] | None, dimension: str, value: str) -> str:
    """A slice no scored row has is a typo far more often than a quiet slice (as for
    `metrics series`): "no anomalies" would hide it. Returns the stored value meant, typed
    as the listing shows it (printable.as_typed: `new\\nline`, `""`)."""
    from ..validation.issues import closest
    from ..warehouse.anomaly_store import TABLE
    from ..warehouse.read import _listing
    marks = ", ".join("?" for _ in metrics or [])
    _, rows = wh.rows(f"select distinct dimension, dimension_value from {wh.relation(TABLE)} where dimension <> ''"
                      + (f" and metric in ({marks})" if metrics else ""), list(metrics or []))
    scored = " of " + ", ".join(f"`{m}`" for m in metrics) if metrics else ""
    dimensions = {str(d) for d, _ in rows}
    if dimension not in dimensions:
        raise ValueError(f"no scored row{scored} has a dimension `{dimension}`{closest(dimension, dimensions)}; "
                         f"scored dimensions: {_listing(dimensions)}")
    known = {str(v) for d, v in rows if d == dimension}
    value = as_typed(value, known)
    if value not in known:
        raise ValueError(f"no scored row{scored} has {dimension} = `{one_line(value)}`{closest(value, known)}; "
                         f"known values: {_listing(known)}")
    return value


def _iso(ts) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(r: dict) -> dict:
    from ..warehouse.read import _num
    out = {k: r.get(k) for k in FIELDS if k != "slice"}
    out["slice"] = {r["dimension"]: r["dimension_value"]} if r["dimension"] else {}
    out["bucket_start"], out["computed_at"] = _iso(r["bucket_start"]), _iso(r["computed_at"])
    for k in ("value", "expected", "lower", "upper", "score", "numerator", "denominator"):
        out[k] = _num(r[k])
    out["is_anomaly"], out["provisional"] = bool(r["is_anomaly"]), bool(r["provisional"])
    return {k: out[k] for k in FIELDS}


def _json(rows: list[dict], args) -> None:
    sys.stdout.write(json.dumps(rows, indent=1) + "\n")


def _csv(rows: list[dict], args) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    columns = [f for f in FIELDS if f != "slice"]
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else ("true" if r[c] else "false") if isinstance(r[c], bool) else csv_cell(r[c])
                    for c in columns])


WIDEST = 40


def _table(rows: list[dict], args) -> None:
    if not rows:
        hint = "" if args.all else "; --all lists every scored bucket"
        print(f"no {'scored buckets' if args.all else 'anomalies'} (scored by the anomalies_<grain> assets of "
              f"`metrics run`{hint})")
        return
    header = ["bucket_start", "metric", "grain", "slice", "score", "flag", "reason"]
    body = [[r["bucket_start"], r["metric"], r["grain"],
             slice_text(r["dimension"], r["dimension_value"]),
             "" if r["score"] is None else f"{r['score']:+.1f}",
             ("ANOMALY" if r["is_anomaly"] else "") + (" provisional" if r["provisional"] else ""), r["reason"] or ""]
            for r in rows]
    # a column is at most WIDEST wide: one 300-character slice value pads no other row (it
    # is printed whole, its own row out of line)
    widths = [max(len(header[i]), *(min(len(line[i]), WIDEST) for line in body)) for i in range(len(header) - 1)]
    print("  ".join(f"{h:<{w}}" for h, w in zip(header, widths)) + "  " + header[-1])
    for line in body:
        print("  ".join(f"{c:<{w}}" for c, w in zip(line, widths)) + "  " + line[-1])


def _backtest(args, wh, project) -> int:
    from ..anomaly import merge_incidents
    from ..anomaly.settings import MAX_SENSITIVITY, MIN_SENSITIVITY
    from ..scoring.inputs import detector_settings
    from ..scoring.window import score
    from ..warehouse.read import now_utc, series_relation
    if not args.metric or len(args.metric) != 1:
        _err("--backtest takes exactly one --metric")
        return 2
    listing = [flag for flag, given in (("--slice", args.slice is not None), ("--since", args.since is not None),
                                        ("--until", args.until is not None), ("--all", args.all)) if given]
    if listing:  # a backtest replays every slice over --days: these would be ignored
        _err(f"{listing[0]} lists stored rows; --backtest replays --days of history for every slice")
        return 2
    days = BACKTEST_DAYS if args.days is None else args.days
    if not 1 <= days <= MAX_BACKTEST_DAYS:
        _err(f"--days must be between 1 and {MAX_BACKTEST_DAYS:,} (got {days:,})")
        return 2
    bad = [s for s in args.sensitivity or [] if not MIN_SENSITIVITY <= s <= MAX_SENSITIVITY]
    if bad:
        _err(f"--sensitivity must be from {MIN_SENSITIVITY:g} to {MAX_SENSITIVITY:g} (got {bad[0]:g})")
        return 2
    metric = project.metrics[args.metric[0]]
    grain = args.grain or ("day" if "day" in metric.grains else metric.grains[0])
    now = now_utc()
    end = bucket_of(now, grain)  # the bucket in progress is never scored
    first = floor_to_grain(metric.start, grain)
    if first >= end:
        _err(f"`{metric.name}` starts on {metric.start:%Y-%m-%d}: no complete {grain} bucket to replay yet")
        return 2
    start = max(bucket_of(now - dt.timedelta(days=days), grain), first)
    if start >= end:  # (it printed a table of zeros, exit 0)
        _err(f"--days {days:,} holds no complete {grain} bucket: the one in progress began {end:%Y-%m-%d %H:%M} UTC "
             f"(ask for more days, or a finer --grain)")
        return 2
    from ..anomaly.settings import at_grain
    configured = detector_settings(metric)
    base = at_grain(configured, grain)
    sensitivities = list(dict.fromkeys(args.sensitivity or sorted({base.sensitivity, 2.0, 3.0, 4.0, 5.0})))
    results = []
    hint = "metrics run --metric " + metric.name + (" --include-drafts" if metric.status == "draft" else "")
    missing = f"{wh.target}: no stored {grain} series of `{metric.name}` over {start:%Y-%m-%d} .. {end:%Y-%m-%d} " \
              f"to replay (build it first: `{hint}`)"
    if not wh.relation_exists(series_relation(metric, grain)):  # a draft never built
        _err(missing)
        return 2
    for s in sensitivities:
        settings = dataclasses.replace(base, sensitivity=s)
        frame, summary = score(wh, project, grain, start, end, now, metrics=[metric], settings_for=lambda m: settings)
        if not summary.series_scored:  # the same for every setting: say why before printing nothing useful
            _err(missing)
            return 2
        # a bucket without enough history (or a baseline), or too sparse to judge, has no
        # score: it could not be flagged
        judged = int(frame.score.notna().sum()) if len(frame) else 0
        incidents = 0
        if len(frame):
            flagged = frame[frame.is_anomaly.astype(bool)]
            for _, part in flagged.groupby(["dimension", "dimension_value"]):
                incidents += len(merge_incidents(part, grain))
        results.append({"metric": metric.name, "grain": grain, "start": _iso(start), "end": _iso(end),
                        "sensitivity": s, "current": s == base.sensitivity, "series": summary.series_scored,
                        "buckets_scored": judged, "buckets_unscored": summary.buckets_scored - judged,
                        "flagged": summary.flagged, "incidents": incidents})
    if args.format == "json":
        sys.stdout.write(json.dumps(results, indent=1) + "\n")
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(results[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({**r, "current": "true" if r["current"] else "false"} for r in results)
    else:
        which = "configured" if configured.sensitivity is not None else f"the {grain} grain's default"
        print(f"backtest of {metric.name} at the {grain} grain over [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) "
              f"(sensitivity {base.sensitivity:g}, {which}; nothing is written)")
        print(f"{'sensitivity':>12}  {'series':>6}  {'buckets scored':>14}  {'unscored':>8}  {'flagged':>7}  "
              f"{'incidents':>9}")
        for r in results:
            mark = "*" if r["current"] else " "
            print(f"{r['sensitivity']:>11g}{mark}  {r['series']:>6,}  {r['buckets_scored']:>14,}  "
                  f"{r['buckets_unscored']:>8,}  {r['flagged']:>7,}  {r['incidents']:>9,}")
        current = "* the sensitivity the metric uses now; " if any(r["current"] for r in results) else ""
        print(f"{current}unscored: buckets without enough history (or too few recent values) to score, or too "
              "sparse to judge")
    return 0

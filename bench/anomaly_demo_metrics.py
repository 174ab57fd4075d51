"""False detections on the demo's own metrics, the way a user meets them: `metrics
demo-data` (90 days, seed 7 unless `--seed`) and `metrics run` on a fresh copy of the project (DuckDB),
then the hour grain's rows of `metric_anomalies`, per metric:

- the planted incidents (demo/generator.py INCIDENTS): flagged rows inside their hours;
- false detections: runs of consecutive flagged hours (one detection) outside the
  incident hours, per 30 days of normal scored hours, for the total and per series (the
  total and every slice scored). Goal (issue 10): at most one per metric per 30 days.

    .venv/bin/python bench/anomaly_demo_metrics.py [--before OLD_CHECKOUT] [--days 90] [--seed 7]

`--before` measures an older checkout (e.g. a `git worktree`) the same way, in the same
run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_orchestration import copy_checkout, env_for, metrics  # noqa: E402
from bench.table import print_table  # noqa: E402
from dagster_project.anomaly import merge_incidents  # noqa: E402
from dagster_project.demo.generator import INCIDENTS  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def measure(checkout: Path, days: int, work: Path, seed: int = 7) -> tuple[pd.DataFrame, dict[str, int]]:
    root = copy_checkout(checkout, work / "project")
    env = env_for(checkout, root, work / "home")
    metrics(env, "demo-data", "--days", str(days), "--seed", str(seed))
    metrics(env, "run")
    con = duckdb.connect(str(root / "warehouse" / "metrics.duckdb"), read_only=True)
    first_day = pd.Timestamp(con.execute("select min(ordered_at) from raw.orders").fetchone()[0]).normalize()
    # the judged buckets (a bucket with too little history has no score and is never flagged)
    rows = con.execute("select metric, dimension, dimension_value, bucket_start, is_anomaly "
                       "from analytics.metric_anomalies where grain = 'hour' and score is not null").fetchdf()
    con.close()
    inside = np.zeros(len(rows), bool)
    found = {}
    for inc in INCIDENTS:
        a = first_day + pd.Timedelta(days=inc.day_offset, hours=inc.hours[0])
        b = first_day + pd.Timedelta(days=inc.day_offset, hours=inc.hours[1])
        hit = ((rows.bucket_start >= a) & (rows.bucket_start < b)).to_numpy()
        inside |= hit
        found[inc.what] = int((hit & rows.is_anomaly.to_numpy(bool)).sum())
    normal = rows[~inside]
    out = []
    for metric, g in normal.groupby("metric"):
        rates = {}
        for (dim, value), s in g.groupby(["dimension", "dimension_value"]):
            # one detection = consecutive flagged hours (a gap, or an incident's hours, between
            # two flagged hours makes two), per 30 days of this series' judged normal hours
            detections = len(merge_incidents(s[s.is_anomaly.astype(bool)], "hour"))
            rates[(dim, value)] = detections * 720 / max(len(s), 1)
        out.append({"metric": metric, "normal hours": int((g.dimension == "").sum()),
                    "total": rates.get(("", ""), 0.0), "per series": float(np.mean(list(rates.values()))),
                    "series": len(rates)})
    return pd.DataFrame(out), found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, help="an older checkout to measure the same way")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=7, help="the demo generator's seed (the README's demo: 7)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_demo_anomalies_"))
    results = {}
    try:
        for label, checkout in (("before", args.before), ("after", HERE)):
            if checkout is not None:
                results[label] = measure(checkout.resolve(), args.days, work / label, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = list(results)
    print(f"\n## The demo's metrics at the hour grain ({args.days} days, seed {args.seed}): false detections per 30 "
          f"days of normal hours\n")
    frames = {k: v[0].set_index("metric") for k, v in results.items()}
    metrics_ = sorted(set().union(*(f.index for f in frames.values())))
    rows = []
    for m in metrics_:
        cells = []
        for k in labels:
            f = frames[k]
            cells += [f"{f.loc[m, 'total']:.2f}", f"{f.loc[m, 'per series']:.2f}"] if m in f.index else ["-", "-"]
        worst = frames[labels[-1]].loc[m, "total"] if m in frames[labels[-1]].index else 0
        rows.append((m, int(frames[labels[-1]].loc[m, "series"]), *cells, "ok" if worst <= 1 else "MISSED"))
    for k in labels:
        f = frames[k]
        rows_all = (f"ALL ({k})", int(f.series.sum()), f"{f.total.mean():.2f} mean, {f.total.max():.2f} max",
                    f"{(f['per series'] * f.series).sum() / f.series.sum():.2f} mean")
        rows.append(rows_all + ("",) * (2 * len(labels) + 3 - len(rows_all)))
    head = ["metric", "series"] + [f"{w} {k}" for k in labels for w in ("total", "per series")] + ["goal (total)"]
    print_table(head, rows, right=head[1:-1])
    print("\n## The planted incidents: flagged hour rows inside their hours (total and slices)\n")
    print_table(["incident"] + labels, [(w, *(results[k][1][w] for k in labels)) for w in results[labels[-1]][1]],
                right=labels)
    print("\na detection = consecutive flagged hours of one series; the goal is at most one per metric per 30 days")


if __name__ == "__main__":
    main()

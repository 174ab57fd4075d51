"""False detections on a young series: clean synthetic hourly series (no anomaly planted)
scored from their minimum history on, and the runs of flagged hours counted per 30 days of
scored hours, by the series' age. A well-fitted series is flagged by chance about 0.3
times in 30 days at the hour grain's default sensitivity; issue 10's goal is at most one.

Shapes: counts (Poisson, negative binomial), fractions (normal, lognormal), averages of
few lognormal amounts and the 95th percentile of a few gamma latencies (both with their
counts), a binomial ratio and an amount per order; each on a daily cycle, with a weekly
one too unless `--no-weekly` (a young series then meets its first weekend).

    .venv/bin/python bench/anomaly_young.py [--before OLD_CHECKOUT] [--series 24] [--seed 5] [--no-weekly]

`--before` scores the same series with an older checkout (e.g. a `git worktree`), in a
subprocess, in the same run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
AGES = (3, 7, 14, 28, 56)  # days since the series' first bucket


def measure(n_series: int, seed: int, weekly: bool) -> dict[str, list[float]]:
    import dataclasses

    import numpy as np
    import pandas as pd

    from dagster_project.anomaly import DetectorSettings, SeriesJob, score_many
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-02", periods=24 * AGES[-1], freq="h")
    h = np.arange(idx.size)
    cycle = 0.35 + 0.65 * np.sin(h % 24 / 24 * np.pi) ** 2
    if weekly:
        cycle = cycle * np.array([1, 1.05, 1.05, 1, .95, .6, .55])[idx.day_of_week]
    nan = np.full(idx.size, np.nan)
    kinds: dict[str, list] = {}

    def add(kind, shape, value, count=nan, num=nan, den=nan):
        kinds.setdefault(kind, []).append((shape, pd.DataFrame({"bucket_start": idx, "value": value, "count": count,
                                                                "numerator": num, "denominator": den})))

    for _ in range(n_series):
        lam = rng.choice([3, 20, 200, 2000])
        add("count, Poisson", "count", rng.poisson(lam * cycle).astype(float))
        mu = lam * cycle
        add("count, negative binomial", "count", rng.negative_binomial(5, 5 / (5 + mu)).astype(float))
        add("fraction, normal", "fraction", 100 + 20 * cycle + rng.normal(0, 3, idx.size))
        add("fraction, lognormal", "fraction", rng.lognormal(3 + 0.3 * cycle, 0.25))
        c = rng.poisson(rng.choice([2, 5, 20, 100]) * cycle)
        add("average of lognormal amounts", "average",
            np.array([rng.lognormal(3.4, 0.6, k).mean() if k else np.nan for k in c]), count=c.astype(float))
        add("p95 of gamma latencies", "average",
            np.array([np.percentile(rng.gamma(4, 60, k), 95) if k else np.nan for k in c]), count=c.astype(float))
        den = rng.poisson(rng.choice([5, 50, 500]) * cycle).astype(float)
        num = rng.binomial(den.astype(int), 0.2).astype(float)
        add("ratio, binomial", "ratio", np.where(den > 0, num / np.maximum(den, 1), np.nan), num=num, den=den)
        amount = np.array([rng.lognormal(3.4, 0.6, int(k)).sum() for k in den])
        add("amount per order", "amount_ratio", np.where(den > 0, amount / np.maximum(den, 1), np.nan),
            num=amount, den=den)
    end = (idx[-1] + pd.Timedelta(hours=1)).to_pydatetime()
    out = {}
    # the p95 series as a percentile metric's (scoring.inputs.detector_settings); an older
    # checkout without DetectorSettings.quantile scores it as an average
    quantile = {"quantile": 0.95} if "quantile" in {f.name for f in dataclasses.fields(DetectorSettings)} else {}
    for kind, frames in kinds.items():
        settings = DetectorSettings(**quantile) if kind.startswith("p95") else DetectorSettings()
        jobs = [SeriesJob(f, shape, "hour", settings, idx[0].to_pydatetime(), end, end, 6, "m")
                for shape, f in frames]
        scored = score_many(jobs)
        scored = scored[scored.score.notna()]
        rates = []
        for a, b in zip(AGES[:-1], AGES[1:]):
            part = scored[(scored.bucket_start >= idx[0] + pd.Timedelta(days=a))
                          & (scored.bucket_start < idx[0] + pd.Timedelta(days=b))]
            runs = 0
            for _, g in part.groupby("job"):
                f = g.is_anomaly.to_numpy(bool)
                runs += int(np.sum(f & ~np.r_[False, f[:-1]]))
            rates.append(runs * 720 / max(len(part), 1))
        out[kind] = rates
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, help="an older checkout to measure the same way")
    p.add_argument("--series", type=int, default=24, help="series per shape (default 24)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--no-weekly", action="store_true", help="a daily cycle only")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one checkout's rates (for --before)
    args = p.parse_args()
    if args.json:
        print(json.dumps(measure(args.series, args.seed, not args.no_weekly)))
        return
    results = {}
    for label, checkout in (("before", args.before), ("after", HERE)):
        if checkout is None:
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--series", str(args.series),
               "--seed", str(args.seed)] + (["--no-weekly"] if args.no_weekly else [])
        done = subprocess.run(cmd, env={"PYTHONPATH": str(checkout.resolve()), "PATH": ""}, capture_output=True,
                              text=True, check=True)
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(HERE))
    from bench.table import print_table
    ages = [f"days {a}-{b}" for a, b in zip(AGES[:-1], AGES[1:])]
    rows = []
    for kind in results["after"]:
        for label, rates in results.items():
            rows.append((kind, label, *(f"{r:.2f}" for r in rates[kind])))
    print(f"\n## Young series: flagged runs per 30 days of scored hours, by age ({args.series} series per shape, "
          f"seed {args.seed}, {'daily cycle' if args.no_weekly else 'daily and weekly cycles'}; goal <= 1)\n")
    print_table(["shape", "code", *ages], rows, right=ages)


if __name__ == "__main__":
    main()

"""User mistakes and readability of the CLI, on real builds: unknown or draft metrics
given to `metrics run`, typo'd slice values, metrics never built, the bucket in progress,
CSV/table output, a closed pipe, demo rows in the future, the closing hints, and
`metrics prune` on every warehouse."""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.demo.generator import generate_range
from dagster_project.paths import ProjectPaths
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw, run_main as _main

pytestmark = pytest.mark.dbt

NOW = "2026-09-03T10:30:00Z"  # mid-day: 2026-09-03 and the week of 2026-08-31 are in progress
CONFIG = "start: 2026-08-31\ngrains: [hour, day, week, month]\nowner: data@example.com\n"
METRICS = {
    # a draft sorts first: the closing hints must skip it
    "growth/a_draft.yml": "name: a_draft\nstatus: draft\nsource: stg_entity_events\ntimestamp: created_at\n"
                          "aggregation: count\nfilter: \"metric_type = 'Like'\"\n",
    # `paper` is an accepted entity_type that this metric never has a row of
    "growth/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                            "filter: \"metric_type = 'Download' and entity_type <> 'paper'\"\ndimensions: [entity_type]\n",
    "growth/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: {source: stg_entity_events, "
                           "timestamp: created_at, aggregation: count_distinct, expression: user_id}\n",
}



@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Four demo days written and built with METRICS_NOW in the middle of the last one."""
    root = tmp_path_factory.mktemp("user_errors")
    make_project(root, METRICS, CONFIG)
    args = ("--project-dir", str(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRICS_NOW", NOW)
        mp.delenv("DAGSTER_HOME", raising=False)
        assert main([*args, "demo-data", "--days", "4", "--end", "2026-09-04", "--events-per-day", "300"]) == 0
        code, run_out, run_err = _main(*args, "run", "--start", "2026-08-31", "--end", "2026-09-04")
        assert code == 0, run_err
    return root, args, run_out


def _fresh(tmp_path) -> tuple[Path, tuple[str, str]]:
    root = tmp_path / "p"
    make_project(root, METRICS, CONFIG)
    return root, ("--project-dir", str(root))


def _fresh_with_demo_data(tmp_path, monkeypatch, metrics: dict[str, str]) -> tuple[Path, tuple[str, str]]:
    """A fresh project with these metrics added (name -> the file after `name:`) and four
    demo days written, at NOW."""
    root, args = _fresh(tmp_path)
    for name, body in metrics.items():
        (root / "metrics" / "growth" / f"{name}.yml").write_text(f"name: {name}\n{body}")
    monkeypatch.setenv("METRICS_NOW", NOW)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main([*args, "demo-data", "--days", "4", "--end", "2026-09-04", "--events-per-day", "300"]) == 0
    return root, args


def test_run_unknown_metric_is_one_line_before_anything_runs(tmp_path):
    root, args = _fresh(tmp_path)
    code, out, err = _main(*args, "run", "--metric", "downlods")
    assert code == 2
    assert err.strip().splitlines() == ["error: unknown metric `downlods` (did you mean `downloads`?): nothing built"]
    assert "[2/3]" not in out  # neither compiled nor run
    assert not any((root / "models" / "metrics").iterdir())
    assert not (root / "warehouse").exists()


def test_a_bad_scoring_thread_count_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    root, args = _fresh(tmp_path)
    monkeypatch.setenv("METRICS_SCORING_THREADS", "all")
    code, out, err = _main(*args, "run")
    assert code == 2
    assert err.strip().splitlines() == ["error: METRICS_SCORING_THREADS must be a whole number of at least 1 "
                                        "(1: score on one core), got 'all': nothing built"]
    assert "[1/3]" not in out
    assert not any((root / "models" / "metrics").iterdir())
    assert not (root / "warehouse").exists()


@pytest.mark.parametrize("day", ["20261120", "2026-W47", "2026-W48-7", "2026-11-20T00:00"])
def test_a_date_option_takes_yyyy_mm_dd_only(tmp_path, day):
    """`date.fromisoformat` also reads a basic or week date (`2026-W47` is a Monday): the
    README and the metric files take YYYY-MM-DD only."""
    _, args = _fresh(tmp_path)
    for command in (["run", "--start", day], ["anomalies", "--since", day], ["series", "orders", "--end", day]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stopped:  # argparse's exit
            main([*args, *command])
        assert stopped.value.code == 2 and f"`{day}` is not a date (YYYY-MM-DD, UTC)" in err.getvalue(), command


def test_docs_into_a_path_it_cannot_write_is_one_line(tmp_path):
    """A file in the way of --out, or a folder that cannot be made, was a traceback."""
    root, args = _fresh(tmp_path)
    (tmp_path / "a_file").write_text("x")
    for out, words in ((tmp_path / "a_file", "(a file, not a folder)"),
                       (tmp_path / "a_file" / "below", "cannot write the catalog there")):
        code, _, err = _main(*args, "docs", "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: ") and words in err and "Traceback" not in err, err
    assert (tmp_path / "a_file").read_text() == "x"


def test_docs_never_writes_into_a_folder_of_other_files(tmp_path):
    """`--out /` or `--out ~/site` wrote index.html and catalog.json over what was there;
    a folder it wrote before (its catalog.json) or an empty one is fine."""
    _, args = _fresh(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("mine")
    code, _, err = _main(*args, "docs", "--out", str(site))
    assert code == 2 and f"error: --out {site}: " in err and "holds other files" in err, err
    assert (site / "index.html").read_text() == "mine" and sorted(p.name for p in site.iterdir()) == ["index.html"]
    (site / "catalog.json").write_text('{"metadata": {}, "nodes": {}}')  # dbt docs' own folder
    code, _, err = _main(*args, "docs", "--out", str(site))
    assert code == 2 and "holds other files" in err and (site / "index.html").read_text() == "mine", err
    # not a catalog it wrote: an empty list beside other files, a page that is no page, a FIFO (it hung)
    for body in ("[]", '[{"page": 1}]'):
        (site / "catalog.json").write_text(body)
        code, _, err = _main(*args, "docs", "--out", str(site))
        assert code == 2 and "holds other files" in err and (site / "index.html").read_text() == "mine", (body, err)
    (site / "catalog.json").unlink()
    os.mkfifo(site / "catalog.json")
    code, _, err = _main(*args, "docs", "--out", str(site))
    assert code == 2 and "holds other files" in err, err
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / ".gitkeep").write_text("")
    assert _main(*args, "docs", "--out", str(kept))[0] == 0  # hidden files only: empty
    catalog = tmp_path / "catalog"
    for _ in range(2):  # new, then its own folder again
        code, _, err = _main(*args, "docs", "--out", str(catalog))
        assert code == 0, err
    assert (catalog / "catalog.json").is_file()


def test_serve_refuses_a_port_it_cannot_listen_on_before_saying_it_serves(tmp_path):
    """--port 99999 served on 34463 (the OS takes it modulo 65536) while printing 99999; a
    port in use printed "serving on ..." and then uvicorn's error."""
    import socket
    _, args = _fresh(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        main([*args, "serve", "--port", "99999"])
    assert stop.value.code == 2 and "a port is from 1 to 65535" in err.getvalue()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, out, err_text = _main(*args, "serve", "--port", str(port))
    assert code == 2 and f"error: cannot serve on 127.0.0.1:{port}" in err_text and "serving" not in out


def test_a_metric_starting_later_is_built_from_its_own_start(tmp_path, monkeypatch):
    """`metrics run --metric X` ran from the project's earliest start (rewriting X's source
    from there) and, for an X starting in the future, built nothing while `metrics series
    X` kept saying to run that same command."""
    root, args = _fresh_with_demo_data(tmp_path, monkeypatch, {
        "later": "source: stg_entity_events\ntimestamp: created_at\naggregation: count\nstart: 2026-09-02\n",
        "future": "source: stg_entity_events\ntimestamp: created_at\naggregation: count\nstart: 2099-01-01\n"})
    code, out, err = _main(*args, "run", "--metric", "later", "--end", "2026-09-04")
    assert code == 0, err
    assert "day rollups, partitions 2026-09-02 .. 2026-09-03" in out, out
    # a later start, before the next run: the first bucket shown has no previous value (it
    # read the hidden 09-02 row the earlier start had built)
    later = root / "metrics" / "growth" / "later.yml"
    later.write_text(later.read_text().replace("start: 2026-09-02", "start: 2026-09-03"))
    code, out, err = _main(*args, "series", "later", "--grain", "day", "--format", "json")
    assert code == 0, err
    first = json.loads(out)[0]
    assert first["bucket_start"] == "2026-09-03T00:00:00Z" and first["value"] > 0, first
    assert first["previous_value"] is None and first["change_pct"] is None, first
    later.write_text(later.read_text().replace("start: 2026-09-03", "start: 2026-09-02"))
    code, out, err = _main(*args, "run", "--metric", "future")
    assert code == 0, err
    assert "future: starts 2099-01-01: no bucket to build yet" in out and "rollups, partitions" not in out
    code, out, err = _main(*args, "series", "future", "--grain", "day")
    assert code == 2 and "`future` starts 2099-01-01: it has no bucket yet" in err, err


def test_run_draft_without_include_drafts_says_so(tmp_path):
    root, args = _fresh(tmp_path)
    code, out, err = _main(*args, "run", "--metric", "a_draft")
    assert code == 2
    assert "`a_draft` is a draft" in err and "--include-drafts" in err and "Traceback" not in err
    assert "[2/3]" not in out
    assert not any((root / "models" / "metrics").iterdir())
    assert not (root / "warehouse").exists()


def test_demo_data_writes_no_row_after_now(built):
    root, _, _ = built
    wh = Warehouse("duckdb", ProjectPaths(root))
    for table, column in (("entity_events", "created_at"), ("orders", "ordered_at"), ("follower_snapshots", "observed_at")):
        last = pd.Timestamp(wh.frame(f"select max({column}) as m from raw.{table}")["m"].iloc[0])
        assert pd.Timestamp("2026-09-03") < last <= pd.Timestamp(NOW).tz_localize(None), (table, last)
    # the whole past days are exactly what the generator gives for them, whenever it runs
    got = wh.frame("select cast(created_at as date) as d, count(*) as n from raw.entity_events group by 1 order by 1")
    want = generate_range(dt.date(2026, 8, 31), dt.date(2026, 9, 3), events_per_day=300)["entity_events"]
    assert list(got.n[:3]) == list(want.groupby(want.created_at.dt.date).size())


def test_run_hints_name_a_metric_of_the_project_and_work_from_the_root(built, tmp_path, monkeypatch):
    root, args, out = built
    assert "model_downloads" not in out
    series = re.search(r"^read a series:\s+(\S+) series downloads --grain day$", out, re.M)
    assert series, out
    exe = Path(series.group(1))
    assert (exe if exe.is_absolute() else root / exe).exists()
    assert "DAGSTER_HOME is not set" in out and f"export DAGSTER_HOME={root.resolve()}/.dagster_home" in out
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("METRICS_NOW", NOW)
    code, out, err = _main(*args, "run", "--metric", "per_user", "--start", "2026-09-02", "--end", "2026-09-03")
    assert code == 0, err
    assert re.search(r"^read a series:\s+\S+ series per_user --grain day$", out, re.M), out
    ui = re.search(r"^open the UI:\s+DAGSTER_HOME=(\S+) (\S+) dev -w workspace.yaml$", out, re.M)
    assert ui and ui.group(1) == str(home) and ui.group(2).endswith("dagster"), out


def test_series_slice_value_never_seen_or_not_accepted_is_an_error(built):
    _, args, _ = built
    code, out, err = _main(*args, "series", "downloads", "--grain", "day", "--slice", "entity_type=modle")
    assert code == 2 and out == ""
    assert "`modle`" in err and "did you mean `model`" in err
    assert "known values: collection, dataset, model, paper, space" in err  # the dbt YAML's accepted_values
    # accepted by the YAML, but no stored row of this metric has it
    code, out, err = _main(*args, "series", "downloads", "--grain", "day", "--slice", "entity_type=paper")
    assert code == 2 and out == ""
    assert "entity_type = `paper` (an accepted value" in err and "did you mean" not in err
    assert "known values: collection, dataset, model, space" in err
    code, out, _ = _main(*args, "series", "downloads", "--grain", "day", "--slice", "entity_type=model", "--format", "json")
    assert code == 0 and all(r["value"] > 0 for r in json.loads(out))
    # the same dimension twice: the last one silently won
    code, out, err = _main(*args, "series", "downloads", "--grain", "day", "--slice", "entity_type=model",
                           "--slice", "entity_type=space")
    assert code == 2 and out == ""
    assert "--slice takes one slice; given 2: entity_type=model, entity_type=space" in err


def test_a_listed_value_with_a_comma_or_padding_is_quoted():
    """The known values are joined with ", ": "Korea, Republic of" read as two values."""
    from dagster_project.warehouse.read import _listing
    assert _listing({"Korea, Republic of", "DE", " US", "", '"x"', "new\nline"}) == \
        '"", " US", "\\"x\\"", DE, "Korea, Republic of", new\\nline'
    assert _listing({"DE", "FR"}) == "DE, FR"
    assert _listing({"none"}) == '"none"' and _listing(set()) == "none"  # a value, and no value
    # quoted, the line break reads as in an unquoted value (escaped once, not twice)
    assert _listing({"a,\nb", "c\nd"}) == '"a,\\nb", c\\nd'


def test_series_of_a_metric_compiled_but_never_built(built):
    root, args, _ = built
    extra = root / "metrics" / "growth" / "views.yml"
    extra.write_text("name: views\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                     "filter: \"metric_type = 'View'\"\n")
    try:
        assert _main(*args, "compile")[0] == 0
        code, out, err = _main(*args, "series", "views", "--grain", "day")
        assert code == 2 and out == ""
        assert "`views` has not been built at the day grain" in err
        assert re.search(r"run `\S*metrics run --metric views`", err), err
        code, out, err = _main(*args, "series", "a_draft", "--grain", "day")  # a draft: the command says how
        assert code == 2 and "--include-drafts" in err
    finally:
        extra.unlink()
        assert _main(*args, "compile")[0] == 0


def test_series_marks_the_bucket_in_progress(built, monkeypatch):
    _, args, _ = built
    monkeypatch.setenv("METRICS_NOW", NOW)
    code, out, _ = _main(*args, "series", "downloads", "--grain", "day", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["bucket_start"][:10] for r in rows] == ["2026-08-31", "2026-09-01", "2026-09-02", "2026-09-03"]
    assert [r["complete"] for r in rows] == [True, True, True, False]
    assert rows[-1]["change_pct"] is not None and rows[-1]["change_pct"] < 0  # JSON keeps the raw number
    code, out, _ = _main(*args, "series", "downloads", "--grain", "day")
    lines = out.splitlines()
    assert lines[-1] == "* bucket in progress: not complete"
    partial = next(line for line in lines if line.startswith("2026-09-03T00:00:00Z*"))
    assert partial.rstrip().endswith("(partial)") and "-" not in partial.split("Z*", 1)[1]
    assert all("(partial)" not in line for line in lines if line.startswith("2026-09-02"))
    code, out, _ = _main(*args, "series", "downloads", "--grain", "week", "--format", "json")
    assert [(r["bucket_start"][:10], r["complete"]) for r in json.loads(out)] == [("2026-08-31", False)]


def test_series_csv_has_a_column_per_field_and_the_table_one_format_per_column(built, monkeypatch):
    _, args, _ = built
    monkeypatch.setenv("METRICS_NOW", NOW)
    code, out, _ = _main(*args, "series", "downloads", "--grain", "day", "--slice", "entity_type=model", "--format", "csv")
    table = list(csv.reader(io.StringIO(out)))
    assert code == 0 and table[0] == ["metric", "grain", "bucket_start", "dimension", "dimension_value", "value",
                                      "previous_value", "change_pct", "complete"]
    assert {(r[3], r[4]) for r in table[1:]} == {("entity_type", "model")}
    assert [r[8] for r in table[1:]] == ["true", "true", "true", "false"] and table[1][6] == ""  # NULL: empty cell
    code, out, _ = _main(*args, "series", "per_user", "--grain", "day")
    body = [line.split() for line in out.splitlines()[1:] if line[:4] == "2026"]
    assert body[0][2] == "NULL"  # no bucket before the first: a gap, not blank
    values = [row[1] for row in body]
    places = {len(v.split(".")[1]) if "." in v else 0 for v in values}
    assert len(places) == 1 and 0 < places.pop() <= 4, values  # a ratio: the same decimals on every row
    code, out, _ = _main(*args, "series", "downloads", "--grain", "day")
    assert all("." not in line.split()[1] for line in out.splitlines()[1:] if line[:4] == "2026")  # counts: integers


def test_series_into_a_closed_pipe_exits_quietly(built):
    root, args, _ = built
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` having exited: the first write fails with EPIPE
    try:
        proc = subprocess.run([str(Path(sys.prefix) / "bin" / "metrics"), *args, "series", "downloads", "--grain", "hour"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0


def test_series_loads_only_what_a_read_needs(built):
    """A read imports no pandas, Dagster, dbt or the alerting models (it builds the whole
    argument parser; `metrics silence` once pulled pydantic's alerts config into it). The
    first read after a change validates the project (and caches it); the next ones not."""
    root, args, _ = built
    assert _main(*args, "series", "downloads", "--grain", "day")[0] == 0
    code = ("import sys\nfrom dagster_project.cli.main import main\n"
            f"rc = main({[*args, 'series', 'downloads', '--grain', 'day']!r})\n"
            "heavy = ('pandas', 'dagster', 'dbt', 'matplotlib', 'dagster_project.alerting.config')\n"
            "print('RESULT', rc, sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "METRICS_NOW": NOW})
    line = next(x for x in out.stderr.splitlines() if x.startswith("RESULT"))
    assert line == "RESULT 0 []", out.stderr
    assert "2026-09-03" in out.stdout


# --- metrics prune, on every warehouse ---------------------------------------------

PRUNE_CONFIG = "start: 2026-09-01\ngrains: [day, month]\nowner: data@example.com\n"
PRUNE_METRICS = {
    "growth/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                            "filter: \"metric_type = 'Download'\"\n",
    "growth/likes.yml": "name: likes\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                        "filter: \"metric_type = 'Like'\"\n",
    "growth/views.yml": "name: views\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                        "filter: \"metric_type = 'View'\"\n",
    "growth/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: {source: stg_entity_events, "
                           "timestamp: created_at, aggregation: count_distinct, expression: user_id}\n",
}


def _counts(wh: Warehouse) -> dict[tuple[str, str], int]:
    """(rollup table, metric) -> rows, read independently of the code under test."""
    if wh.target == "clickhouse":
        sql = "select name from system.tables where database = 'analytics' and engine like '%MergeTree'"
    else:
        sql = "select table_name as name from information_schema.tables where table_schema = 'analytics' and table_type = 'BASE TABLE'"
    out = {}
    for table in (n for n in wh.frame(sql)["name"]
                  if n == "metric_anomalies" or n.startswith("rollup_") and not n.endswith(("__staged", "__scratch"))):
        df = wh.frame(f"select metric, count(*) as n from {wh.relation(table)} group by metric")
        out.update({(table, str(m)): int(n) for m, n in zip(df.metric, df.n)})
    return out


def test_prune_lists_then_deletes_only_rows_of_removed_metrics(target, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"prune_{target}")
    paths = make_project(root, PRUNE_METRICS, PRUNE_CONFIG)
    wh = Warehouse(target, paths)
    load_raw(wh, generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 3), events_per_day=200))
    compile_and_build(paths, target, (dt.date(2026, 9, 1), dt.date(2026, 9, 3)))
    # scored rows of two metrics, one of them about to be removed: `metrics anomalies` listed
    # a removed metric's detections and called it unknown when asked for it
    from dagster_project.warehouse.anomaly_store import NAMES, replace_window
    scored = pd.DataFrame([{c: None for c in NAMES} | {
        "metric": m, "grain": "day", "bucket_start": pd.Timestamp(f"2026-09-0{d}"), "dimension": "",
        "dimension_value": "", "value": 1.0, "is_anomaly": False, "provisional": False, "model": "poisson-nb/none",
        "reason": "r", "run_id": "t", "computed_at": pd.Timestamp("2026-09-03")} for m in ("likes", "downloads")
        for d in (1, 2)])
    replace_window(wh, "day", dt.datetime(2026, 9, 1), dt.datetime(2026, 9, 3), scored)
    before = _counts(wh)
    assert before[("metric_anomalies", "likes")] == 2
    tables = sorted({t for t, _ in before})
    assert len(tables) == 3 and all((t, "likes") in before for t in tables)
    assert any(m == "per_user__denominator" for _, m in before)
    (root / "metrics" / "growth" / "likes.yml").unlink()  # removed
    views = root / "metrics" / "growth" / "views.yml"
    views.write_text(views.read_text() + "status: archived\n")  # archived: history kept

    args = ("--project-dir", str(root), "prune", "--target", target)
    code, out, err = _main(*args)
    assert code == 0, err
    listed = {(t.split(".")[-1], m, int(n.replace(",", ""))) for t, m, n in re.findall(
        r"^(\S+): (\S+): ([\d,]+) row\(s\) of a metric no longer defined$", out, re.M)}
    assert listed == {(t, "likes", before[(t, "likes")]) for t in tables}, out
    assert "--apply" in out and "per_user" not in out and "downloads" not in out
    assert re.search(r"views: [\d,]+ row\(s\) kept \(archived", out)
    assert _counts(wh) == before  # listing deletes nothing

    code, out, err = _main(*args, "--apply")
    assert code == 0, err
    assert f"deleted {sum(before[(t, 'likes')] for t in tables):,} row(s)" in out
    assert _counts(wh) == {k: n for k, n in before.items() if k[1] != "likes"}
    code, out, _ = _main(*args)
    assert code == 0 and "nothing to prune" in out


def test_prune_deletes_the_anomaly_rows_of_a_metric_no_longer_scored_at_a_grain(tmp_path):
    """`anomaly: {enabled: false}` or a grain dropped: a scoring run replaces only what it
    scores, so the old detections stayed listed by `metrics anomalies`."""
    paths = make_project(tmp_path, PRUNE_METRICS, PRUNE_CONFIG)
    wh = Warehouse("duckdb", paths)
    from dagster_project.warehouse.anomaly_store import NAMES, replace_window
    for grain, start in (("day", "2026-09-01"), ("month", "2026-09-01")):
        rows = pd.DataFrame([{c: None for c in NAMES} | {
            "metric": m, "grain": grain, "bucket_start": pd.Timestamp(start), "dimension": "", "dimension_value": "",
            "value": 1.0, "is_anomaly": True, "provisional": False, "model": "poisson-nb/none", "reason": "r",
            "run_id": "t", "computed_at": pd.Timestamp("2026-10-03")} for m in ("downloads", "likes", "views")])
        replace_window(wh, grain, dt.datetime(2026, 9, 1), dt.datetime(2026, 10, 1), rows)
    downloads = tmp_path / "metrics" / "growth" / "downloads.yml"
    downloads.write_text(downloads.read_text() + "anomaly: {enabled: false}\n")
    likes = tmp_path / "metrics" / "growth" / "likes.yml"
    likes.write_text(likes.read_text() + "grains: [day]\n")
    args = ("--project-dir", str(tmp_path), "prune", "--target", "duckdb")
    code, out, err = _main(*args)
    assert code == 0, err
    listed = sorted(re.findall(r"^\S+: (\S+): 1 row\(s\) at the (\w+) grain, where the metric is no longer scored", out,
                               re.M))
    assert listed == [("downloads", "day"), ("downloads", "month"), ("likes", "month")], out

    def stored():
        df = wh.frame("select metric, grain from analytics.metric_anomalies order by metric, grain")
        return list(zip(df.metric, df.grain))

    assert len(stored()) == 6  # listing deletes nothing
    code, out, err = _main(*args, "--apply")
    assert code == 0 and "deleted 3 row(s)" in out, (out, err)
    assert stored() == [("likes", "day"), ("views", "day"), ("views", "month")]
    assert "nothing to prune" in _main(*args)[1]


def test_the_alerts_table_writes_numbers_as_the_reasons_do(capsys):
    """`metrics alerts` printed 8.923e+04 beside a reason saying 89,226."""
    from dagster_project.cli.alerts import _print
    _print([{"alert_key": "anomaly:follower_count:day:", "value": 89226.0, "expected": 0.000123, "score": -4.5}],
           ["alert_key", "value", "expected", "score"], "table")
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1:] == ["89,226", "0.000123", "-4.5"], row


def test_an_empty_slice_value_reads_apart_from_the_total():
    """A slice whose value is '' showed as `country=` in reasons and tables, while the
    known-values listing said `""`; typed as listed, `--slice 'country=""'` found nothing."""
    from dagster_project.printable import as_typed, slice_text
    assert slice_text("", "") == "total"
    assert slice_text("country", "") == 'country=""'
    assert slice_text("country", "new\nline") == "country=new\\nline"
    assert slice_text("country", "DE") == "country=DE"
    # quoted as the listing quotes: a value that is two quotes is not the empty one
    assert slice_text("country", '""') == 'country="\\"\\""' and slice_text("country", " US") == 'country=" US"'
    # and each listed form, typed back, is the value it shows
    known = {"", " US", "Korea, Republic of", "none", "new\nline", "DE"}
    for value in known:
        assert as_typed(slice_text("country", value).split("=", 1)[1], known) == value
    # an exact value wins; two values shown alike are left as typed
    assert as_typed("new\\nline", {"new\nline", "new\\nline"}) == "new\\nline"


def test_one_long_slice_value_pads_no_other_row_of_the_anomalies_table(capsys):
    from types import SimpleNamespace

    from dagster_project.cli.anomalies import _table
    row = {"bucket_start": "2026-11-28T00:00:00Z", "metric": "orders", "grain": "day", "dimension": "country",
           "score": -4.2, "is_anomaly": True, "provisional": False, "reason": "orders 3 vs expected 40 (20..60)"}
    _table([{**row, "dimension_value": "x" * 300}, {**row, "dimension_value": "DE"}], SimpleNamespace(all=False))
    lines = capsys.readouterr().out.splitlines()
    assert "x" * 300 in lines[1]  # printed whole
    assert len(lines[2]) < 150 and lines[2].index("-4.2") == lines[0].index("score"), lines

"""`metrics diff --base REF` on real git repositories in temporary folders (a copy of the
project with a base commit and a change), the CI template's commands as the workflow runs
them, and `metrics backfill --from-diff` through Dagster on a real DuckDB file."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT, ProjectPaths
from dagster_project.pr.diff import diff_against
from dagster_project.pr.render import markdown, text
from dagster_project.validation.project import load_project

from .conftest import make_project

NOW = dt.datetime(2026, 10, 15, 13, 30)
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", message)
    return git(root, "rev-parse", "HEAD")


def compiled(root: Path) -> None:
    assert main(["--project-dir", str(root), "compile"]) == 0


def project_repo(root: Path) -> tuple[ProjectPaths, str]:
    """A git repo holding a copy of this project (the example metrics, compiled)."""
    paths = make_project(root, {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    (root / ".gitignore").write_text(".venv\nwarehouse/\ndbt_project/target/\ndbt_project/logs/\n")
    compiled(root)
    git(root, "init", "-q", "-b", "main")
    return paths, commit(root, "base")


def edit(paths: ProjectPaths, rel: str, old: str, new: str) -> None:
    f = paths.metrics_dir / rel
    body = f.read_text()
    assert old in body, (rel, old)
    f.write_text(body.replace(old, new))


@pytest.fixture
def repo(tmp_path):
    return project_repo(tmp_path / "repo")


def by_name(result) -> dict:
    return {m.name: m for m in result.metrics}


def test_changes_are_classified_and_planned(repo):
    paths, base = repo
    edit(paths, "growth/model_downloads.yml", "metric_type = 'Download'", "metric_type = 'Like'")  # breaking
    edit(paths, "commerce/orders.yml", "description: Orders placed.",  # non-breaking only
         "description: Orders placed (all countries).\nowner: sales@example.com\n"
         "anomaly: {sensitivity: 4}\nalerts: [sales-slack]")
    edit(paths, "engagement/reactions_net.yml", "metric_type in ('ReactionLike', 'ReactionHeart')",
         "metric_type IN ('ReactionLike','ReactionHeart')")  # the same SQL once parsed
    edit(paths, "commerce/p95_order_latency_ms.yml", "percentile: 0.95", "percentile: 0.9")
    edit(paths, "growth/dataset_likes.yml", "status: draft", "status: active")
    edit(paths, "commerce/max_order_amount.yml", "grains: [day, week, month]", "grains: [hour, day, week, month]")
    edit(paths, "engagement/active_users.yml", "dimensions: [entity_type, entity_category]",
         "dimensions: [entity_type, entity_category]\ngrains: [day, week]")  # grains removed only
    edit(paths, "commerce/avg_order_latency_ms.yml", "dimensions: [country]", "dimensions: [country]\nstart: 2026-08-01")
    (paths.metrics_dir / "social" / "follower_count.yml").unlink()
    (paths.metrics_dir / "commerce" / "big_orders.yml").write_text(
        "name: big_orders\ndescription: Orders above 100.\nsource: stg_orders\ntimestamp: ordered_at\n"
        "aggregation: count\nfilter: \"amount > 100\"\nstart: 2026-10-01\n")

    result = diff_against(paths, "main", now=NOW)
    got = by_name(result)
    assert result.base.commit == base
    assert {n: (m.change, m.impact) for n, m in got.items()} == {
        "big_orders": ("added", "new"),
        "follower_count": ("removed", "removed"),
        "model_downloads": ("changed", "breaking"),
        "downloads_per_active_user": ("changed", "breaking"),  # its numerator changed
        "orders": ("changed", "non-breaking"),
        "reactions_net": ("changed", "non-breaking"),
        "p95_order_latency_ms": ("changed", "breaking"),
        "dataset_likes": ("changed", "activated"),
        "max_order_amount": ("changed", "breaking"),
        "active_users": ("changed", "non-breaking"),
        "avg_order_latency_ms": ("changed", "breaking"),
    }
    assert result.unchanged == 14 - 1 - 9  # 14 metrics at the base, 1 removed, 9 changed
    shown = text(result)  # each impact's label once ("removed: removed: its rows stay ...")
    assert "         removed: its rows stay in the rollup tables" in shown and "removed: removed:" not in shown
    fields = {n: {f.field: f.breaking for f in m.fields} for n, m in got.items()}
    assert fields["model_downloads"] == {"filter": True}
    assert got["downloads_per_active_user"].reasons == ["input `model_downloads` changes values"]
    assert fields["orders"] == {"description": False, "owner": False, "alerts": False, "anomaly.sensitivity": False}
    assert fields["reactions_net"] == {"filter": False}
    assert fields["p95_order_latency_ms"] == {"percentile": True}
    assert fields["dataset_likes"] == {"status": True}
    assert fields["max_order_amount"] == {"grains": True}
    assert fields["active_users"] == {"grains": False}
    assert fields["avg_order_latency_ms"] == {"start": True}

    # the SQL diff: only the models whose text changes, attributed to the metric it is about
    assert got["model_downloads"].sql_changed == [f"rollups/rollup_stg_entity_events__by_created_at__{g}.sql"
                                                  for g in ("day", "hour", "month", "week")]
    assert got["orders"].sql_changed == [] and got["reactions_net"].sql_changed == []
    body = result.sql_diff["rollups/rollup_stg_entity_events__by_created_at__day.sql"]
    assert "-" in body and "'Download'" in body and "'Like'" in body and body.startswith("--- a/models/metrics/")
    assert "rollups/rollup_stg_orders__by_ordered_at__hour.sql" in got["max_order_amount"].sql_changed

    # the plan: new, breaking and activated active metrics, from the earliest start, per grain
    plan = result.plan
    assert plan.metrics == sorted(["big_orders", "model_downloads", "downloads_per_active_user", "p95_order_latency_ms",
                                   "dataset_likes", "max_order_amount", "avg_order_latency_ms"])
    assert plan.start == dt.date(2026, 8, 1)
    rows = {g.grain: (g.period, g.first_partition, g.last_partition, g.partitions) for g in plan.grains}
    assert rows == {"hour": ("day", "2026-08-01", "2026-10-15", 76), "day": ("day", "2026-08-01", "2026-10-15", 76),
                    "week": ("week", "2026-07-27", "2026-10-12", 12), "month": ("month", "2026-08-01", "2026-10-01", 3)}
    hour = next(g for g in plan.grains if g.grain == "hour")
    assert "max_order_amount" in hour.metrics and "rollup_stg_orders__by_ordered_at__hour" in hour.models
    assert hour.models[-2:] == ["metric_series_hour", "anomalies_hour"]

    # text and Markdown say the same
    shown = text(result)
    # the five breaking ones: a new metric and an activated draft have no built values to change
    assert "1 added, 9 changed, 1 removed, 4 unchanged; 5 metrics' values change" in shown, shown
    # and the JSON counts the same five (it counted the new and the activated one too: 7);
    # what the plan builds is `backfill`
    summary = result.as_dict()["summary"]
    assert summary["breaking"] == 5, summary
    metrics_json = {m["name"]: m for m in result.as_dict()["metrics"]}
    assert metrics_json["big_orders"]["breaking"] is False and metrics_json["big_orders"]["backfill"] is True
    assert metrics_json["model_downloads"]["breaking"] is True
    assert "changed  model_downloads" in shown and "filter: metric_type = 'Download' -> metric_type = 'Like'  [breaking]" in shown
    assert "hour   day        2026-08-01  2026-10-15          76" in shown
    md = markdown(result)
    assert "| `model_downloads` | changed | **breaking** | **filter** | from 2026-09-01 |" in md
    assert "| `orders` | changed | non-breaking | description, owner, alerts, anomaly.sensitivity | — |" in md
    assert "| hour | day | 2026-08-01 | 2026-10-15 | 76 |" in md
    assert "```diff" in md


def test_plan_partitions_are_the_dagster_partitions(repo):
    """The plan's partition ranges and counts are the keys of defs/partitions.py."""
    from dagster_project.defs.partitions import PARTITION_PERIOD, partitions_for
    from dagster_project.pr import plan as pr_plan
    assert pr_plan.PARTITION_PERIOD == PARTITION_PERIOD
    paths, _ = repo
    edit(paths, "commerce/orders.yml", "dimensions: [country]", "dimensions: [country]\nstart: 2026-07-29")
    for now in (NOW, dt.datetime(2026, 11, 30, 23, 59), dt.datetime(2027, 1, 4, 0, 0)):
        result = diff_against(paths, "main", now=now)
        assert result.plan.metrics == ["average_order_value", "orders"]  # a ratio over orders too
        for g in result.plan.grains:
            keys = partitions_for(g.grain, dt.date(2026, 7, 29)).get_partition_keys(
                current_time=now.replace(tzinfo=dt.timezone.utc))
            keys = [k for k in keys if k >= g.first_partition]
            assert (keys[0], keys[-1], len(keys)) == (g.first_partition, g.last_partition, g.partitions), g


def test_ratio_and_derived_inputs(repo):
    paths, _ = repo
    edit(paths, "growth/downloads_per_active_user.yml", "expression: user_id, source", "expression: entity_id, source")
    edit(paths, "commerce/refunds.yml", "filter: refunded", "filter: refunded and amount > 0")
    edit(paths, "commerce/net_revenue.yml", '"revenue - refunds"', '"revenue-refunds"')
    got = by_name(diff_against(paths, "main", now=NOW))
    ratio = got["downloads_per_active_user"]
    assert [(f.field, f.old, f.new, f.breaking) for f in ratio.fields] == [("denominator.expression", "user_id", "entity_id", True)]
    assert ratio.impact == "breaking"
    net = got["net_revenue"]
    assert [(f.field, f.breaking) for f in net.fields] == [("expression", False)]  # reformatted only
    assert net.reasons == ["input `refunds` changes values"] and net.impact == "breaking"
    assert got["refunds"].impact == "breaking" and "revenue" not in got


def test_non_breaking_change_plans_nothing_and_the_cli_formats(repo, capsys):
    paths, _ = repo
    edit(paths, "commerce/orders.yml", "description: Orders placed.", "description: Every order.")
    args = ["--project-dir", str(paths.root), "diff", "--base", "main"]
    assert main([*args, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"] == {"added": 0, "removed": 0, "changed": 1, "unchanged": 13, "breaking": 0, "notes": 0}
    assert out["metrics"][0]["fields"] == [{"field": "description", "old": "Orders placed.", "new": "Every order.",
                                            "breaking": False}]
    assert out["backfill_plan"]["grains"] == [] and out["sql_diff"] == {}
    assert main(args) == 0
    assert "Backfill plan: nothing to recompute." in capsys.readouterr().out
    assert main([*args, "--format", "markdown"]) == 0
    assert "### Backfill plan\n\nNothing to recompute." in capsys.readouterr().out


def test_clear_errors(repo, tmp_path, capsys, monkeypatch):
    paths, _ = repo
    assert main(["--project-dir", str(paths.root), "diff", "--base", "no-such-branch"]) == 2
    assert "unknown git ref `no-such-branch`" in capsys.readouterr().err
    assert main(["--project-dir", str(paths.root), "diff", "--base", "origin/main"]) == 2
    assert "git fetch origin main" in capsys.readouterr().err
    plain = make_project(tmp_path / "plain", {"commerce/orders.yml": (paths.metrics_dir / "commerce/orders.yml").read_text()})
    assert main(["--project-dir", str(plain.root), "diff", "--base", "main"]) == 2
    assert "is not inside a git repository" in capsys.readouterr().err
    # --days and --target say how --values builds: without it they were silently ignored
    for extra in (["--days", "7"], ["--target", "postgres"]):
        assert main(["--project-dir", str(paths.root), "diff", "--base", "main", *extra]) == 2
        assert f"{extra[0]} is for --values (" in capsys.readouterr().err
    monkeypatch.setenv("METRICS_TARGET", "foo")  # it said "Values ... on foo: no changed metric to compare"
    assert main(["--project-dir", str(paths.root), "diff", "--base", "main", "--values"]) == 2
    assert "unknown target `foo` in $METRICS_TARGET" in capsys.readouterr().err
    monkeypatch.delenv("METRICS_TARGET")
    # the working tree must validate
    edit(paths, "commerce/orders.yml", "aggregation: count", "aggregation: countt")
    assert main(["--project-dir", str(paths.root), "diff", "--base", "main"]) == 2
    err = capsys.readouterr().err
    assert "the working tree does not validate" in err and "metrics/commerce/orders.yml:" in err


def test_a_base_that_does_not_validate_is_reported_and_compared_file_by_file(repo, capsys):
    paths, _ = repo
    edit(paths, "commerce/orders.yml", "aggregation: count", "aggregation: countt")
    commit(paths.root, "broken")
    edit(paths, "commerce/orders.yml", "aggregation: countt", "aggregation: count")  # the PR fixes it
    edit(paths, "commerce/revenue.yml", "description: Gross order revenue.", "description: Gross revenue.")
    assert main(["--project-dir", str(paths.root), "diff", "--base", "HEAD", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "warning: HEAD: metrics/commerce/orders.yml:" in captured.err
    out = json.loads(captured.out)
    assert out["base_issues"] and "does not validate" in out["notes"][0]
    # the two changed files, and the ratio and derived metrics that read them
    readers = {n for n, m in load_project(paths).project.metrics.items() if m.public and {"orders", "revenue"} & set(m.inputs)}
    assert readers == {"average_order_value", "net_revenue"}
    assert {m["name"]: m["impact"] for m in out["metrics"]} == dict.fromkeys(["orders", "revenue", *readers], "breaking")
    assert out["backfill_plan"]["metrics"] == sorted(["orders", "revenue", *readers])
    reasons = {m["name"]: m["reasons"] for m in out["metrics"]}
    assert "reads a metric whose file changed" in reasons["net_revenue"][0]


def test_parentheses_a_swapped_equality_and_a_one_value_in_are_no_change_of_values(repo):
    """`(metric_type = 'Download')` was breaking and planned a rebuild of every grain."""
    paths, _ = repo
    edit(paths, "growth/model_downloads.yml", "metric_type = 'Download'", "('Download' = metric_type)")
    edit(paths, "growth/dataset_likes.yml", "metric_type = 'Like' and entity_type = 'dataset'",
         "(metric_type in ('Like')) and ((entity_type = 'dataset'))")
    edit(paths, "engagement/reactions_net.yml", "metric_type in ('ReactionLike', 'ReactionHeart')",
         "(metric_type in ('ReactionLike', 'ReactionHeart'))")
    result = diff_against(paths, "main", now=NOW)
    got = by_name(result)
    assert {n: (m.change, m.impact) for n, m in got.items()} == {
        n: ("changed", "non-breaking") for n in ("model_downloads", "dataset_likes", "reactions_net")}
    assert all(f.note == "same SQL once parsed" for m in got.values() for f in m.fields)
    assert result.plan.grains == []
    # what does change values still does: precedence, operands, the other side of a comparison
    for old, new in (("('Download' = metric_type)", "'Like' = metric_type"),
                     ("('Download' = metric_type)", "metric_type <> 'Download'")):
        edit(paths, "growth/model_downloads.yml", old, new)
        assert by_name(diff_against(paths, "main", now=NOW))["model_downloads"].impact == "breaking", new
        edit(paths, "growth/model_downloads.yml", new, old)


def test_a_staging_model_change_is_noted_with_the_metrics_it_feeds(repo, capsys):
    paths, _ = repo
    sql = paths.models_dir / "staging" / "stg_orders.sql"
    sql.write_text(sql.read_text().rstrip() + "\nwhere amount > 100\n")
    result = diff_against(paths, "HEAD", now=NOW)
    over = sorted(m.name for m in load_project(paths).project.public() if m.measure and m.measure.source == "stg_orders")
    (note,) = [n for n in result.notes if "stg_orders" in n]
    assert "model `stg_orders` changed (its SQL)" in note and all(f"`{m}`" in note for m in over), note
    # and the ratio and derived metrics over them
    assert "`average_order_value`" in note and "`net_revenue`" in note, note
    assert "metrics run --metric" in note
    # the headline does not say "no values change" above that note
    paths_args = ["--project-dir", str(paths.root), "diff", "--base", "HEAD"]
    capsys.readouterr()
    assert main(paths_args) == 0
    head = capsys.readouterr().out.splitlines()[1]
    assert "no values change" not in head and "the notes name what else may change values" in head, head
    assert main([*paths_args, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["notes"] == 1


def test_a_base_that_does_not_validate_still_sees_a_config_change(repo, capsys):
    paths, _ = repo
    edit(paths, "commerce/orders.yml", "aggregation: count", "aggregation: countt")
    commit(paths.root, "broken")
    edit(paths, "commerce/orders.yml", "aggregation: countt", "aggregation: count")
    config = paths.metrics_dir / "_config.yml"
    config.write_text(config.read_text().replace("start: 2026-09-01", "start: 2026-06-01"))  # every metric starts earlier
    assert main(["--project-dir", str(paths.root), "diff", "--base", "HEAD", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    active = {m.name for m in load_project(paths).project.public() if m.status == "active" and m.start.isoformat() == "2026-06-01"}
    assert active <= {m["name"] for m in out["metrics"] if m["impact"] == "breaking"}, out["metrics"]


def test_a_base_before_the_project_existed(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("empty\n")
    commit(root, "empty")
    paths, _ = project_repo(root)  # the project arrives in the second commit
    result = diff_against(paths, "HEAD~1", now=NOW)
    assert {m.change for m in result.metrics} == {"added"} and len(result.metrics) == 14
    assert "dataset_likes" not in result.plan.metrics and result.plan.drafts == ["dataset_likes"]  # built on demand


def test_project_in_a_subfolder(tmp_path):
    root = tmp_path / "mono"
    paths = make_project(root / "analytics", {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    commit(root, "base")
    edit(paths, "commerce/orders.yml", "aggregation: count", "aggregation: count\nfilter: \"country = 'DE'\"")
    got = by_name(diff_against(paths, "main", now=NOW))
    assert got["orders"].impact == "breaking" and got["orders"].sql_changed


def test_diff_needs_no_dagster_dbt_or_warehouse_and_is_fast(repo):
    paths, _ = repo
    edit(paths, "growth/model_downloads.yml", "metric_type = 'Download'", "metric_type = 'Like'")
    code = ("import sys, time\nfrom dagster_project.cli.main import main\nt = time.perf_counter()\n"
            f"rc = main(['--project-dir', {str(paths.root)!r}, 'diff', '--base', 'main', '--format', 'json'])\n"
            "loaded = sorted(m for m in ('dagster', 'dbt', 'duckdb', 'pandas') if m in sys.modules)\n"
            "print('RESULT', rc, loaded, round(time.perf_counter() - t, 2), file=sys.stderr)\n")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.root)
    wall = time.perf_counter() - started
    line = next(x for x in out.stderr.splitlines() if x.startswith("RESULT"))
    assert line.split()[1:3] == ["0", "[]"], out.stderr
    assert json.loads(out.stdout)["summary"]["breaking"] == 2
    assert not (paths.root / "warehouse").exists() or not any((paths.root / "warehouse").iterdir())
    assert wall < 20, wall  # seconds on 2 shared cores, interpreter start included


# ------------------------------------------------------------------ the CI template

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "metrics-pr.yml"


def workflow_commands() -> list[str]:
    """The workflow's `run:` lines that are metrics commands, in order."""
    spec = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in spec["jobs"].values() for s in job["steps"]]
    assert any(s.get("uses", "").startswith("actions/checkout") and s.get("with", {}).get("fetch-depth") == 0
               for s in steps), "the diff needs the base branch: checkout with fetch-depth: 0"
    runs = [line.strip() for s in steps if "run" in s for line in s["run"].splitlines() if line.strip()]
    assert "bash scripts/install.sh" in runs
    return [r for r in runs if r.startswith(".venv/bin/metrics ")]


def run_workflow(root: Path, base: str, summary: Path) -> list[tuple[str, int, str]]:
    out = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    for cmd in workflow_commands():
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", cmd.replace("origin/main", base)],
                              cwd=root, env=env, capture_output=True, text=True)
        out.append((cmd, done.returncode, done.stdout + done.stderr))
        if done.returncode:
            break
    return out


def test_the_ci_template_runs_for_every_file_validation_reads():
    # a renamed route in alerts.yml breaks the metrics that name it: a PR touching only it is checked too
    paths = yaml.safe_load(WORKFLOW.read_text())[True]["pull_request"]["paths"]  # YAML reads `on:` as True
    assert {"metrics/**", "models/**", "macros/**", "seeds/**", "alerts.yml"} <= set(paths)


def test_the_ci_template_runs_on_a_pull_request(tmp_path):
    assert workflow_commands() == [".venv/bin/metrics validate", ".venv/bin/metrics compile --check",
                                   '.venv/bin/metrics diff --base origin/main --format markdown >> "$GITHUB_STEP_SUMMARY"']
    paths, base = project_repo(tmp_path / "repo")
    (paths.root / ".venv").symlink_to(REPO_ROOT / ".venv")  # what scripts/install.sh makes
    # the pull request: a changed filter and a new metric, compiled and committed
    edit(paths, "growth/model_downloads.yml", "metric_type = 'Download'", "metric_type = 'Like'")
    (paths.metrics_dir / "commerce" / "big_orders.yml").write_text(
        "name: big_orders\ndescription: Orders above 100.\nsource: stg_orders\ntimestamp: ordered_at\n"
        "aggregation: count\nfilter: \"amount > 100\"\n")
    compiled(paths.root)
    commit(paths.root, "change")
    summary = tmp_path / "summary.md"
    results = run_workflow(paths.root, base, summary)
    assert [(c, rc) for c, rc, _ in results] == [(c, 0) for c in workflow_commands()], results
    md = summary.read_text()
    assert md.startswith(f"## Metrics diff against `{base}`")
    assert "| `big_orders` | added | **new** |" in md and "| `model_downloads` | changed | **breaking** | **filter** |" in md
    assert "### Backfill plan" in md and "```diff" in md

    # the same pull request without `metrics compile`: the check step fails, naming the file
    edit(paths, "growth/model_downloads.yml", "metric_type = 'Like'", "metric_type = 'View'")
    commit(paths.root, "forgot to compile")
    results = run_workflow(paths.root, base, tmp_path / "summary2.md")
    assert [(c, rc) for c, rc, _ in results] == [(".venv/bin/metrics validate", 0), (".venv/bin/metrics compile --check", 1)]
    assert "stale: models/metrics/rollups/rollup_stg_entity_events__by_created_at__day.sql" in results[-1][2]


# ------------------------------------------------------------------ backfill --from-diff

@pytest.mark.dbt
def test_backfill_from_diff_launches_the_plan(tmp_path, monkeypatch, capsys):
    """A small project built, then a breaking change: `metrics backfill --from-diff` runs
    exactly the plan (one Dagster run per grain, from the metric's start) and the series
    then holds the new definition's values; a non-breaking change launches nothing."""
    import duckdb
    today = dt.datetime.now(dt.timezone.utc).date()
    start = today - dt.timedelta(days=2)
    root = tmp_path / "repo"
    paths = make_project(root, {
        "commerce/orders.yml": "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n"
                               "dimensions: [country]\n",
        "commerce/revenue.yml": "name: revenue\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\n"
                                "expression: amount\n",
    }, f"start: {start}\ngrains: [hour, day, week, month]\n")
    (root / ".gitignore").write_text("warehouse/\ndbt_project/target/\ndbt_project/logs/\n")
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    args = ["--project-dir", str(root)]
    assert main([*args, "demo-data", "--days", "3", "--events-per-day", "600"]) == 0
    assert main([*args, "run"]) == 0
    git(root, "init", "-q", "-b", "main")
    commit(root, "base")

    edit(paths, "commerce/orders.yml", "aggregation: count", "aggregation: count\nfilter: \"country = 'DE'\"")
    (paths.metrics_dir / "commerce" / "orders_fr.yml").write_text(
        "name: orders_fr\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\nfilter: \"country = 'FR'\"\n")
    capsys.readouterr()
    assert main([*args, "backfill", "--from-diff", "main", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert f"Backfill plan (metrics backfill --from-diff main): orders, orders_fr from {start}" in dry
    monkeypatch.setenv("METRICS_SCORING_THREADS", "x")  # refused before anything is compiled or built
    assert main([*args, "backfill", "--from-diff", "main"]) == 2
    refused = capsys.readouterr()
    assert "METRICS_SCORING_THREADS must be a whole number of at least 1" in refused.err
    assert "backfilling" not in refused.out and "compiled" not in refused.out
    monkeypatch.delenv("METRICS_SCORING_THREADS")
    assert main([*args, "backfill", "--from-diff", "main"]) == 0
    out = capsys.readouterr().out
    assert sum("rollups, partitions" in line and "assets x" in line for line in out.splitlines()) == 4  # a run per grain
    # The run may cross midnight UTC: its last partition is then the next day.
    ends = (today, today + dt.timedelta(days=1))
    assert any(f"day rollups, partitions {start} .. {end}" in out for end in ends)
    assert any(f"hour rollups, partitions {start} .. {end}" in out for end in ends)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    want = dict(con.execute("select date_trunc('day', ordered_at), count(*) from raw.orders where country = 'DE' "
                            "group by 1").fetchall())
    got = dict(con.execute("select bucket_start, value from analytics.metric_series_day "
                           "where metric = 'orders' and dimension = ''").fetchall())
    revenue_runs = con.execute("select count(distinct run_id) from analytics.rollup_stg_orders__by_ordered_at__day").fetchone()
    # the catalog lists the metric the backfill built (it was left as it was)
    listed = {m for (m,) in con.execute("select metric from analytics.metric_catalog").fetchall()}
    con.close()
    assert listed == {"orders", "orders_fr", "revenue"}, listed
    # The series is dense up to the current day: a day with no DE order (the day that
    # began during the test, if it crossed midnight) is 0, never missing.
    days = sorted(got)
    assert days[0].date() == start and days[-1].date() in ends and len(days) == (days[-1] - days[0]).days + 1
    assert got == {d: float(want.get(d, 0)) for d in days} and set(want) <= set(got)
    assert revenue_runs == (1,)  # the rollup is rewritten whole (revenue is on it too): by one run

    commit(root, "breaking change, backfilled")
    edit(paths, "commerce/revenue.yml", "expression: amount", "expression: amount\ndescription: Gross revenue.")
    assert main([*args, "backfill", "--from-diff", "main"]) == 0
    out = capsys.readouterr().out
    assert "Backfill plan: nothing to recompute." in out and "Dagster run" not in out


def test_a_committed_link_out_of_the_project_is_a_clear_error(repo, tmp_path, capsys):
    """`tarfile.AbsoluteLinkError` came out as a traceback of `metrics diff`."""
    paths, _ = repo
    outside = tmp_path / "elsewhere.yml"
    outside.write_text((paths.metrics_dir / "commerce" / "orders.yml").read_text().replace("name: orders", "name: linked"))
    (paths.metrics_dir / "commerce" / "linked.yml").symlink_to(outside)
    commit(paths.root, "a link")
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "diff", "--base", "HEAD"]) == 2
    err = capsys.readouterr().err
    assert "metrics/commerce/linked.yml" in err and "points outside the project" in err and "Traceback" not in err, err


def test_a_seed_an_upstream_model_or_a_source_change_is_noted_with_the_metrics_it_feeds(repo):
    """Only a changed model named as a metric's source was noted: a seed's rows, a model
    the staging model refs, or where a source's rows are read changed values unsaid
    ("no values change"), or were said to feed no metric."""
    paths, _ = repo
    project = load_project(paths).project

    def over(source: str) -> list[str]:
        return sorted(m.name for m in project.public() if m.measure and m.measure.source == source)

    def note_for(prefix: str) -> str:
        found = [n for n in diff_against(paths, "HEAD", now=NOW).notes if n.startswith(prefix)]
        assert len(found) == 1, diff_against(paths, "HEAD", now=NOW).notes
        return found[0]

    seed = paths.seeds_dir / "entity_types.csv"
    seed.write_text(seed.read_text() + "zzz,zzz\n")
    note = note_for("seed `entity_types` changed (its rows)")
    assert over("stg_entity_events") and all(f"`{m}`" in note for m in over("stg_entity_events")), note
    assert "`orders`" not in note
    git(paths.root, "checkout", "-q", "--", ".")

    staging = paths.models_dir / "staging"
    (staging / "base_orders.sql").write_text("select * from {{ source('raw', 'orders') }}\n")
    sql = (staging / "stg_orders.sql").read_text()
    (staging / "stg_orders.sql").write_text(sql.replace("{{ source('raw', 'orders') }}", "{{ ref('base_orders') }}"))
    commit(paths.root, "a model under stg_orders")
    (staging / "base_orders.sql").write_text("select * from {{ source('raw', 'orders') }} where amount > 100\n")
    note = note_for("model `base_orders` changed (its SQL)")
    assert all(f"`{m}`" in note for m in over("stg_orders")) and "`average_order_value`" in note, note
    git(paths.root, "checkout", "-q", "--", ".")

    sources = staging / "_sources.yml"
    sources.write_text(sources.read_text().replace("      - name: orders\n", "      - name: orders\n        identifier: orders_v2\n"))
    note = note_for("source `raw.orders` changed (where its rows are read)")
    assert all(f"`{m}`" in note for m in over("stg_orders")), note
    # a freshness change, or writing out dbt's defaults (the schema is the source's name,
    # the identifier the table's), reads the same rows: no note
    git(paths.root, "checkout", "-q", "--", ".")
    sources.write_text(sources.read_text().replace("count: 12", "count: 13")
                       .replace("      - name: orders\n", "      - name: orders\n        identifier: orders\n"))
    assert not [n for n in diff_against(paths, "HEAD", now=NOW).notes if "source" in n]
    # a model fed through a package-qualified or versioned ref
    git(paths.root, "checkout", "-q", "--", ".")
    sql = (staging / "stg_orders.sql").read_text()
    (staging / "stg_orders.sql").write_text(sql.replace("{{ ref('base_orders') }}", "{{ ref('metrics_as_code', 'base_orders') }}"))
    commit(paths.root, "a two-argument ref")
    (staging / "base_orders.sql").write_text("select * from {{ source('raw', 'orders') }} where amount > 5\n")
    assert "`orders`" in note_for("model `base_orders` changed (its SQL)")

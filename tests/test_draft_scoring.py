"""A draft is scored only when its own file says `anomaly: {enabled: true}` (README), on
`metrics run --include-drafts`; it never alerts. Real dbt on DuckDB."""
from __future__ import annotations

import duckdb
import pytest

from dagster_project.alerting.evaluate import metric_infos
from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT
from dagster_project.validation.project import load_project

from .conftest import make_project

pytestmark = pytest.mark.dbt

BASE = "source: stg_orders\ntimestamp: ordered_at\naggregation: count\nstatus: draft\n"
METRICS = {
    "commerce/draft_scored.yml": "name: draft_scored\n" + BASE + "anomaly: {enabled: true}\n",
    "commerce/draft_quiet.yml": "name: draft_quiet\n" + BASE,
    "commerce/orders_live.yml": "name: orders_live\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n",
}


def test_an_enabled_draft_is_scored_with_include_drafts_and_never_alerts(tmp_path, capsys):
    paths = make_project(tmp_path, METRICS, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    args = ["--project-dir", str(tmp_path)]
    assert main([*args, "demo-data", "--days", "3", "--end", "2026-09-04", "--events-per-day", "1500"]) == 0
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-04"]) == 0

    def scored() -> dict[tuple[str, str], int]:
        with duckdb.connect(str(paths.warehouse_dir / "metrics.duckdb"), read_only=True) as con:
            rows = con.sql("select metric, grain, count(*) from analytics.metric_anomalies group by all").fetchall()
        return {(m, g): n for m, g, n in rows}

    before = scored()
    assert before[("orders_live", "day")] == 3 and not any(m.startswith("draft") for m, _ in before)
    capsys.readouterr()
    assert main([*args, "anomalies", "--backtest", "--metric", "draft_scored"]) == 2  # its view is not built yet
    assert "build it first: `metrics run --metric draft_scored --include-drafts`" in capsys.readouterr().err
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-04", "--include-drafts"]) == 0
    after = scored()
    # every day of the window, as the active metric's (too young: "not enough history" rows)
    assert after[("draft_scored", "day")] == after[("orders_live", "day")] == 3
    assert after[("draft_scored", "hour")] == after[("orders_live", "hour")]
    assert not any(m == "draft_quiet" for m, _ in after)
    # the next ordinary scoring of the window replaces the active metrics' rows only
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-04"]) == 0
    assert scored() == after
    infos = metric_infos(load_project(paths).project)
    assert not infos["draft_scored"].enabled and infos["orders_live"].enabled

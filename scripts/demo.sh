#!/usr/bin/env bash
# README command 1: install everything, write 90 days of demo data into the embedded
# DuckDB warehouse, and run the main job (the Dagster asset jobs, in process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
DAGSTER_HOME=$(cd "$DAGSTER_HOME" && pwd)  # absolute, so the printed command works from anywhere
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster_home.yaml "$DAGSTER_HOME/dagster.yaml"
.venv/bin/metrics demo-data --days 90 --seed 7
.venv/bin/metrics run
echo
# a metric this project really has: the first active one, at day grain when it has one
read -r metric grain < <(.venv/bin/metrics list --format json | .venv/bin/python -c '
import json, sys
active = [m for m in json.load(sys.stdin) if m["status"] == "active"]
print(*((active[0]["name"], "day" if "day" in active[0]["grains"] else active[0]["grains"][0]) if active else ("", "")))') || true
if [ -n "${metric:-}" ]; then
  echo "Try:  .venv/bin/metrics series $metric --grain $grain --start $(date -u -d '-7 days' +%F)"
fi
echo "Anomalies the run found:  .venv/bin/metrics anomalies   (--format json, --all, --metric NAME, --grain hour)"
echo "UI:   DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev -w workspace.yaml   (then open http://127.0.0.1:3000)"

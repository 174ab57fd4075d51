#!/usr/bin/env bash
# README command 1: install everything, write 90 days of demo data into the embedded
# DuckDB warehouse, and run the main job (the Dagster asset jobs, in process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster_home.yaml "$DAGSTER_HOME/dagster.yaml"
.venv/bin/metrics demo-data --days 90 --seed 7
.venv/bin/metrics run
echo
echo "Try:  .venv/bin/metrics series model_downloads --grain day --start $(date -u -d '-7 days' +%F)"
echo "UI:   DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev -w workspace.yaml   (then open http://127.0.0.1:3000)"

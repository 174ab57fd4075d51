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
# `metrics run` ends by printing where the results are, the commands that read a series and
# list the anomalies the run found, and how to open the Dagster UI on this run's history

#!/usr/bin/env bash
# README command 1: install everything, write 90 days of demo data into the embedded
# DuckDB warehouse, and run the main job (validate, compile, build every rollup).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/metrics demo-data --days 90 --seed 7
.venv/bin/metrics run
echo
echo "Try:  .venv/bin/metrics series model_downloads --grain day --start $(date -u -d '-7 days' +%F)"
echo "UI:   .venv/bin/dagster dev -w workspace.yaml   (then open http://127.0.0.1:3000)"

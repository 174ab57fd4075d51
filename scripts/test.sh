#!/usr/bin/env bash
# README command 2: install everything and run the test suite (real dbt, real DuckDB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest "$@"

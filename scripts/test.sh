#!/usr/bin/env bash
# README command 2: install everything, start the local Postgres, run the test suite
# (real dbt on DuckDB files, a Postgres server and ClickHouse in process via chDB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# the catalog test opens `metrics docs` pages in headless Chromium (Debian's package)
if ! command -v chromium >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    echo "warning: could not install chromium (Debian package); tests/test_docs_catalog.py will fail" >&2
fi
if ! bash scripts/postgres.sh; then
  echo "warning: Postgres could not be started; postgres tests will be skipped" >&2
  echo "         (set METRICS_REQUIRE_ALL_TARGETS=1 to make that a failure, as CI does)" >&2
fi
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Screenshots of what a user sees in the Dagster UI: the asset graph and the backfills
# page, taken with headless Chromium (Debian's `chromium`, installed if missing) against
# `dagster dev` on a free loopback port. Needs the demo built first (scripts/demo.sh).
# Output: docs/screenshots/asset_graph.png, backfills.png, automation.png (schedules and sensor)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME" docs/screenshots
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster_home.yaml "$DAGSTER_HOME/dagster.yaml"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "$PORT" > /tmp/metrics-dagster-dev.log 2>&1 &
DEV=$!
trap 'kill $DEV 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/server_info" >/dev/null && break
  sleep 1
done
sleep 10  # let the code location load
# the UI's first-visit "join the community" dialog would cover the screenshots: mark it
# seen on this instance, as its own dismiss button does
curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -d '{"query": "mutation { setNuxSeen }"}' >/dev/null || true
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1600,1000 --virtual-time-budget=20000 \
    --screenshot="$2" "http://127.0.0.1:$PORT$1" >/dev/null 2>&1
  echo "wrote $2"
}
# a 3-day backfill of the daily rollups, launched the way the UI launches it (GraphQL)
DAYS=$(for d in 3 2 1; do date -u -d "-$d days" +%F; done | paste -sd, | sed 's/\([0-9-]*\)/"\1"/g')
curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -d "{\"query\": \"mutation(\$p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: \$p) { __typename } }\", \"variables\": {\"p\": {\"assetSelection\": [{\"path\": [\"metric_series_day\"]}], \"partitionNames\": [$DAYS], \"fromFailure\": false}}}" || true
echo
sleep 20
shot "/asset-groups" docs/screenshots/asset_graph.png
shot "/overview/backfills" docs/screenshots/backfills.png
shot "/automation" docs/screenshots/automation.png

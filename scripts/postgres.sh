#!/usr/bin/env bash
# Install (if missing) and start a local Postgres 15 for the postgres target and its
# tests: role/database `metrics` with password `metrics`, reachable on 127.0.0.1:5432.
# Idempotent; uses Debian's postgresql package.
set -euo pipefail
VERSION=${PG_VERSION:-15}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d "/usr/lib/postgresql/$VERSION" ]; then
  echo "installing postgresql-$VERSION ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-$VERSION" >/dev/null
fi
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/main"; then
  $SUDO pg_createcluster "$VERSION" main >/dev/null
fi
HBA="/etc/postgresql/$VERSION/main/pg_hba.conf"
if ! grep -q "metrics-as-code" "$HBA"; then
  # password login for the test role over loopback, ahead of the default rules
  $SUDO sed -i "1i host all metrics 127.0.0.1/32 scram-sha-256 # metrics-as-code" "$HBA"
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$VERSION" main start
else
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$VERSION" main reload
fi
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break
  sleep 1
done
if [ -z "$SUDO" ]; then
  psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -q $(printf '%q ' "$@")"; }
else
  psql_admin() { sudo -u postgres psql -v ON_ERROR_STOP=1 -q "$@"; }
fi
psql_admin -c "do \$\$ begin
  if not exists (select from pg_roles where rolname = 'metrics') then
    create role metrics login password 'metrics' createdb;
  end if; end \$\$;"
psql_admin -tc "select 1 from pg_database where datname = 'metrics'" | grep -q 1 || psql_admin -c "create database metrics owner metrics"
echo "postgres $VERSION is up on 127.0.0.1:5432 (user metrics, database metrics)"

"""`driver: chdb` for dbt-clickhouse: ClickHouse in process, no server.

dbt-clickhouse 1.10.3 knows only the `http` and `native` drivers. Upstream PR #693
(dbt-clickhouse) proposes a chdb driver built on clickhouse-connect's embedded client;
until it lands, `register()` adds one: a subclass of the adapter's HTTP client whose
`_create_client` returns `clickhouse_connect.get_client(interface="chdb", path=...)`.
Tested with dbt-clickhouse==1.10.3, clickhouse-connect 1.12.0, chdb 4.4.0 (pinned in
pyproject.toml). The profile's `host` field carries the chDB data folder.

`register()` also makes seeds load numbers as `Float64` / `Int64` (see
`_wide_seed_number_types`): it runs before every dbt invocation on ClickHouse, in process
(`warehouse/dbt_runner.py`, `defs/dbt_in_process.py`) and in the `metrics-dbt` command.
"""
from __future__ import annotations

_REGISTERED = False


def _wide_seed_number_types() -> None:
    """Seeds: CSV numbers become `Float64` (with a decimal point; DuckDB and Postgres
    use `float8`, a double) or `Int64`, whatever the driver (chdb, http, native).

    Why: dbt-clickhouse 1.10.3 (`ClickHouseAdapter.convert_number_type`) types them
    `Float32` / `Int32`: `31.83` is stored as 31.829999923706055, and an id above 2^31
    silently wraps (3000000029 -> -1294967267), so a metric over a seed differs from the
    other warehouses (tests/test_seed_parity.py). (DuckDB and Postgres type whole numbers
    `integer` too, but refuse an out-of-range id loudly; declare `column_types` there.)
    A seed's `column_types` config still overrides these."""
    from dbt.adapters.clickhouse.impl import ClickHouseAdapter

    def convert_number_type(cls, agate_table, col_idx: int) -> str:
        import agate

        decimals = agate_table.aggregate(agate.MaxPrecision(col_idx))
        return "Float64" if decimals else "Int64"

    def convert_integer_type(cls, agate_table, col_idx: int) -> str:
        return "Int64"  # the base adapter's "integer" is Int32 on ClickHouse

    ClickHouseAdapter.convert_number_type = classmethod(convert_number_type)
    ClickHouseAdapter.convert_integer_type = classmethod(convert_integer_type)


def register() -> None:
    """Teach dbt-clickhouse the `chdb` driver and 64-bit seed number types (idempotent;
    call before dbt runs on ClickHouse)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _wide_seed_number_types()
    import clickhouse_connect
    from dbt.adapters.clickhouse import connections, dbclient
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    class ChdbDbtClient(ChHttpClient):
        def _create_client(self, credentials):
            # session_id selects an HTTP session; an embedded engine has none
            settings = {k: v for k, v in self._conn_settings.items() if k != "session_id"}
            return clickhouse_connect.get_client(interface="chdb", path=credentials.host, settings=settings)

        def close(self):
            self._client.close()

    original = dbclient.get_db_client

    def get_db_client(credentials):
        if credentials.driver == "chdb":
            return ChdbDbtClient(credentials)
        return original(credentials)

    dbclient.get_db_client = get_db_client
    connections.get_db_client = get_db_client
    _REGISTERED = True


def dbt_main() -> None:
    """The `metrics-dbt` command: dbt with the chdb driver registered, so a dbt process
    started outside this package (a shell, a plain DbtCliResource) can build on chDB."""
    import os
    import sys

    # registering imports the ClickHouse client stack (~1 s): only when it can be needed
    argv = sys.argv[1:]
    wants = os.environ.get("METRICS_TARGET") == "clickhouse" or any(
        a == "clickhouse" and i > 0 and argv[i - 1] in ("--target", "-t") for i, a in enumerate(argv))
    if wants or "--target=clickhouse" in argv:
        register()
    from dbt.cli.main import cli

    sys.exit(cli())

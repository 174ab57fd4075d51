"""`driver: chdb` for dbt-clickhouse: ClickHouse in process, no server.

dbt-clickhouse 1.10.3 knows only the `http` and `native` drivers. Upstream PR #693
(dbt-clickhouse) proposes a chdb driver built on clickhouse-connect's embedded client;
until it lands, `register()` adds one: a subclass of the adapter's HTTP client whose
`_create_client` returns `clickhouse_connect.get_client(interface="chdb", path=...)`.
Tested with dbt-clickhouse==1.10.3, clickhouse-connect 1.12.0, chdb 4.4.0 (pinned in
pyproject.toml). The profile's `host` field carries the chDB data folder.
"""
from __future__ import annotations

_REGISTERED = False


def register() -> None:
    """Teach dbt-clickhouse the `chdb` driver (idempotent; call before dbt runs)."""
    global _REGISTERED
    if _REGISTERED:
        return
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
    that Dagster spawns can build on chDB (pass it as DbtCliResource's dbt_executable)."""
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

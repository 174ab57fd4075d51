"""Alert state in the warehouse (DESIGN.md, Alerting): `alert_state` (one row per alert
key and route), `alert_outbox` (one row per message and channel) and `alert_cursor`
(the newest anomaly scoring an evaluation has read).

`commit` writes an evaluation's state changes, its new outbox rows and the cursor in one
transaction on DuckDB and Postgres. ClickHouse has no multi-statement transactions: there
the outbox rows go first and the state after, and because a message's idempotency key is
derived from the state it was made from, an evaluation repeated after a crash in between
rebuilds the same keys and the existing outbox rows are kept, not doubled. A changed row
is never deleted before its new version exists there: every row carries a `version`, the
new one is inserted, then the older ones are deleted, and reads keep the newest version
of each key, so a crash between the two leaves a duplicate that reads ignore."""
from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

from .connection import Warehouse, WarehouseError, _ch_literal

if TYPE_CHECKING:
    import pandas as pd

STATE, OUTBOX, CURSOR = "alert_state", "alert_outbox", "alert_cursor"

STATE_COLUMNS: list[tuple[str, str]] = [
    ("alert_key", "key"), ("route", "key"), ("kind", "text"), ("metric", "text"), ("grain", "text"),
    ("dimension", "text"), ("dimension_value", "text"), ("group_key", "text"), ("status", "text"),
    ("severity", "text"), ("episode", "int"), ("sends", "int"), ("notified", "bool"),
    ("opened_at", "timestamp"), ("last_sent_at", "timestamp"), ("resolved_at", "timestamp"),
    ("since", "timestamp"), ("bucket_start", "timestamp"), ("value", "double"), ("expected", "double"),
    ("lower", "double"), ("upper", "double"), ("score", "double"), ("direction", "text"),
    ("reason", "text"), ("chart", "text"), ("silence", "text"), ("detail", "text"), ("resolution", "text"),
    ("updated_at", "timestamp"), ("version", "int"),
]
OUTBOX_COLUMNS: list[tuple[str, str]] = [
    ("idempotency_key", "key"), ("channel", "key"), ("route", "text"), ("group_key", "text"),
    ("status", "text"), ("kind", "text"), ("payload", "text"), ("created_at", "timestamp"), ("seq", "int"),
    ("attempts", "int"), ("last_error", "text"), ("next_attempt_at", "timestamp"), ("delivered_at", "timestamp"),
    ("version", "int"),
]
CURSOR_COLUMNS: list[tuple[str, str]] = [("name", "key"), ("value", "timestamp"), ("updated_at", "timestamp"),
                                         ("version", "int")]
TABLES = {STATE: STATE_COLUMNS, OUTBOX: OUTBOX_COLUMNS, CURSOR: CURSOR_COLUMNS}
KEYS = {STATE: ("alert_key", "route"), OUTBOX: ("idempotency_key", "channel"), CURSOR: ("name",)}
_TYPES = {
    "duckdb": {"key": "varchar not null", "text": "varchar", "int": "bigint", "bool": "boolean",
               "timestamp": "timestamp", "double": "double"},
    "postgres": {"key": "text not null", "text": "text", "int": "bigint", "bool": "boolean",
                 "timestamp": "timestamp", "double": "double precision"},
    "clickhouse": {"key": "String", "text": "Nullable(String)", "int": "Nullable(Int64)", "bool": "Nullable(Bool)",
                   "timestamp": "Nullable(DateTime64(6, 'UTC'))", "double": "Nullable(Float64)"},
}


def names(table: str) -> list[str]:
    return [c for c, _ in TABLES[table]]


def _q(name: str) -> str:
    return f'"{name}"'  # lower, upper, value: quote every column


def _create(wh: Warehouse, table: str) -> str:
    types = _TYPES[wh.target]
    cols = ", ".join(f"{_q(c)} {types[k]}" for c, k in TABLES[table])
    if wh.target == "clickhouse":
        order = ", ".join(KEYS[table])
        return f"create table if not exists {wh.relation(table)} ({cols}) engine = MergeTree order by ({order})"
    keys = ", ".join(KEYS[table])
    return f"create table if not exists {wh.relation(table)} ({cols}, primary key ({keys}))"


def ensure_tables(wh: Warehouse, con) -> None:
    """Create the tables, and add the columns a newer version of this module has."""
    if wh.target == "duckdb":
        run = con.execute
        have = lambda t: {r[0] for r in con.execute(  # noqa: E731
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [wh.schema, t]).fetchall()}
    elif wh.target == "clickhouse":
        run = con.command
        have = lambda t: {r[0] for r in con.query(  # noqa: E731
            f"select name from system.columns where database = {_ch_literal(wh.schema)} and table = {_ch_literal(t)}"
        ).result_rows}
    else:
        cur = con.cursor()
        run = cur.execute

        def have(t: str) -> set[str]:
            cur.execute("select column_name from information_schema.columns where table_schema = %s "
                        "and table_name = %s", [wh.schema, t])
            return {r[0] for r in cur.fetchall()}
    run(f"create {'database' if wh.target == 'clickhouse' else 'schema'} if not exists {wh.schema}")
    types = _TYPES[wh.target]
    for t in TABLES:
        run(_create(wh, t))
        present = have(t)
        for column, kind in TABLES[t]:
            if column not in present:
                run(f"alter table {wh.relation(t)} add column {_q(column)} {types[kind]}")


def _frame(table: str, rows: list[dict]) -> "pd.DataFrame":
    import pandas as pd
    frame = pd.DataFrame([{c: r.get(c) for c in names(table)} for r in rows], columns=names(table))
    for c, k in TABLES[table]:
        if k == "timestamp":
            frame[c] = pd.to_datetime(frame[c])
        elif k == "double":
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        elif k == "int":
            frame[c] = pd.array(frame[c], dtype="Int64")
            if c == "version":
                frame[c] = frame[c].fillna(1)
        elif k == "bool":
            frame[c] = pd.array(frame[c], dtype="boolean")
        else:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def _upsert_duckdb(wh: Warehouse, con, table: str, frame, only_new: bool) -> None:
    name = f"incoming_{table}"
    con.register(name, frame)
    match = " and ".join(f"t.{k} = i.{k}" for k in KEYS[table])
    rel = wh.relation(table)
    cols = ", ".join(map(_q, names(table)))  # by name: an added column sits last in an older table
    if only_new:
        con.execute(f"insert into {rel} ({cols}) select {cols} from {name} i "
                    f"where not exists (select 1 from {rel} t where {match})")
    else:
        con.execute(f"delete from {rel} t using {name} i where {match}")
        con.execute(f"insert into {rel} ({cols}) select {cols} from {name}")
    con.unregister(name)


def _upsert_postgres(wh: Warehouse, cur, table: str, frame, only_new: bool) -> None:
    tmp = f"incoming_{table}"
    cols = ", ".join(map(_q, names(table)))
    cur.execute(f"create temporary table if not exists {tmp} (like {wh.relation(table)}) on commit drop")
    cur.execute(f"truncate {tmp}")
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
    buf.seek(0)
    cur.copy_expert(f"copy {tmp} ({cols}) from stdin with (format csv, null '\\N')", buf)
    match = " and ".join(f"t.{k} = i.{k}" for k in KEYS[table])
    rel = wh.relation(table)
    if only_new:
        cur.execute(f"insert into {rel} ({cols}) select {cols} from {tmp} i where not exists "
                    f"(select 1 from {rel} t where {match})")
    else:
        cur.execute(f"delete from {rel} t using {tmp} i where {match}")
        cur.execute(f"insert into {rel} ({cols}) select {cols} from {tmp}")


def _key_list(table: str, rows) -> str:
    keys = KEYS[table]
    return ", ".join("(" + ", ".join(_ch_literal(r[k]) for k in keys) + ")" for r in rows)


def _upsert_clickhouse(wh: Warehouse, con, table: str, frame, only_new: bool) -> None:
    """Insert the new versions, then delete the versions that were there before (never
    the other way round: see the module docstring)."""
    keys = KEYS[table]
    rel = wh.relation(table)
    records = frame[list(keys)].to_dict("records")
    existing: dict[tuple, list[int]] = {}
    for i in range(0, len(records), 2000):  # bounded statement size
        chunk = records[i:i + 2000]
        found = con.query(f"select {', '.join(keys)}, version from {rel} "
                          f"where ({', '.join(keys)}) in ({_key_list(table, chunk)})")
        for row in found.result_rows:
            existing.setdefault(tuple(row[:-1]), []).append(int(row[-1] or 0))
    rows = [tuple(r[k] for k in keys) for r in records]
    if only_new:
        frame = frame[[r not in existing for r in rows]]
        if len(frame):
            con.insert_df(rel, frame)
        return
    frame = frame.assign(version=[max(existing.get(r, [0])) + 1 for r in rows])
    con.insert_df(rel, frame)
    old = [(*k, v) for k, versions in existing.items() for v in versions]
    for i in range(0, len(old), 2000):
        tuples = ", ".join("(" + ", ".join(_ch_literal(x) for x in t) + ")" for t in old[i:i + 2000])
        con.command(f"delete from {rel} where ({', '.join(keys)}, version) in ({tuples})")


def _upsert(wh: Warehouse, con, table: str, rows: list[dict], only_new: bool = False) -> None:
    if not rows:
        return
    frame = _frame(table, rows)
    if wh.target == "duckdb":
        _upsert_duckdb(wh, con, table, frame, only_new)
    elif wh.target == "clickhouse":
        _upsert_clickhouse(wh, con, table, frame, only_new)
    else:
        _upsert_postgres(wh, con.cursor(), table, frame, only_new)


def commit(wh: Warehouse, states: list[dict], messages: list[dict], cursor: dt.datetime | None,
           lock_timeout: float | None = None) -> None:
    """Write state changes, new outbox rows (kept when their key exists) and the cursor
    together: one transaction where the warehouse has them (module docstring)."""
    from .lock import warehouse_lock
    cursor_rows = [{"name": "anomalies", "value": cursor, "updated_at": dt.datetime.utcnow()}] if cursor else []
    with warehouse_lock(wh.target, wh.paths, timeout=lock_timeout), wh.connect() as con:
        try:
            ensure_tables(wh, con)
            if wh.target == "duckdb":
                con.execute("begin transaction")
            _upsert(wh, con, OUTBOX, messages, only_new=True)  # first: see the module docstring
            _upsert(wh, con, STATE, states)
            _upsert(wh, con, CURSOR, cursor_rows)
            if wh.target == "duckdb":
                con.execute("commit")
        except WarehouseError:
            raise
        except Exception as err:  # driver errors differ per target
            if wh.target == "duckdb":
                con.execute("rollback")
            raise WarehouseError(f"{wh.target}: writing alert state: {str(err).strip().splitlines()[0]}") from None


def record_delivery(wh: Warehouse, rows: list[dict], lock_timeout: float | None = None) -> None:
    """Write back outbox rows after a delivery attempt (delivered_at or the next retry)."""
    if not rows:
        return
    from .lock import warehouse_lock
    with warehouse_lock(wh.target, wh.paths, timeout=lock_timeout), wh.connect() as con:
        try:
            _upsert(wh, con, OUTBOX, rows)
        except Exception as err:  # driver errors differ per target
            raise WarehouseError(f"{wh.target}: recording a delivery: {str(err).strip().splitlines()[0]}") from None


def read_table(wh: Warehouse, table: str, where: str = "", params: list | None = None,
               order: str = "") -> list[dict]:
    """Rows of an alert table as dicts ([] before the first evaluation)."""
    if not wh.relation_exists(table):
        return []
    source = wh.relation(table)
    if wh.target == "clickhouse":  # the newest version of each key (module docstring)
        keys = ", ".join(KEYS[table])
        source = f"(select * from {source} order by {keys}, version desc limit 1 by {keys})"
    sql = f"select {', '.join(map(_q, names(table)))} from {source}"
    sql += f" where {where}" if where else ""
    sql += f" order by {order}" if order else ""
    columns, rows = wh.rows(sql, params or [])
    return [dict(zip(columns, r)) for r in rows]


def read_cursor(wh: Warehouse) -> dt.datetime | None:
    rows = read_table(wh, CURSOR, "name = ?", ["anomalies"])
    return rows[0]["value"] if rows else None

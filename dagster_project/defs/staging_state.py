"""Whether `metrics run` must rebuild the seeds and staging views: only when their
definitions (SQL checksum, config, columns, the macros they may call) changed since their
last successful build on this warehouse, or a relation is missing. Views read the raw
tables at query time, so new raw rows never need a rebuild. Saves a dbt process and a
Dagster run (~6 s) on every routine run; the state lives in dbt_project/target/."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..compiler.writer import macros_digest
from ..paths import ProjectPaths
from ..warehouse.connection import Warehouse, pg_settings

STATE_FILE = "metrics_staging_built.json"


def _state_path(paths: ProjectPaths) -> Path:
    return paths.dbt_project_dir / "target" / STATE_FILE


def warehouse_identity(wh: Warehouse) -> str:
    if wh.target == "duckdb":
        where = str(wh.paths.duckdb_path.resolve())
    elif wh.target == "clickhouse":
        where = str(wh.paths.chdb_path.resolve())
    else:
        s = pg_settings()
        where = f"{s['host']}:{s['port']}/{s['dbname']}"
    return f"{wh.target}:{where}:{wh.schema}"


def _staging_nodes(manifest: dict) -> list[dict]:
    return [n for n in manifest.get("nodes", {}).values()
            if "staging" in (n.get("tags") or []) and n.get("resource_type") in ("model", "seed")]


def fingerprint(paths: ProjectPaths, manifest: dict) -> str:
    digest = hashlib.sha256(macros_digest(paths.root / "macros").encode())
    for node in sorted(_staging_nodes(manifest), key=lambda n: n["unique_id"]):
        digest.update(json.dumps([node["unique_id"], node.get("checksum"), node.get("config"), node.get("columns"),
                                  node.get("relation_name")], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _read(paths: ProjectPaths) -> dict:
    try:
        return json.loads(_state_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def up_to_date(wh: Warehouse, manifest: dict) -> bool:
    """True when the last successful staging build on this warehouse had these definitions
    and every staging relation still exists."""
    if _read(wh.paths).get(warehouse_identity(wh)) != fingerprint(wh.paths, manifest):
        return False
    with wh.reading():
        return all(wh.relation_exists(n["alias"] or n["name"]) for n in _staging_nodes(manifest)
                   if n.get("resource_type") == "model")


def record_built(wh: Warehouse, manifest: dict) -> None:
    state = _read(wh.paths)
    state[warehouse_identity(wh)] = fingerprint(wh.paths, manifest)
    target = _state_path(wh.paths)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(target)
    except OSError:
        pass  # next run rebuilds staging: slower, never wrong


def forget(paths: ProjectPaths) -> None:
    _state_path(paths).unlink(missing_ok=True)

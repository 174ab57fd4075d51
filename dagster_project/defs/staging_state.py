"""Whether `metrics run` must rebuild the seeds and staging views, or the metric catalog:
only when their definitions (SQL checksum, config, columns, the macros they may call)
changed since their last successful build on this warehouse, or a relation is missing.
Views read their tables at query time (the catalog is a view over literal definitions),
so new rows never need a rebuild. Each skip saves a dbt process and a Dagster run
(~6 s) on every routine run; the state lives in dbt_project/target/. Only builds by
`metrics run` are recorded: a build from the UI with other definitions, followed by a
return to the ones `metrics run` last built, leaves the UI's build in place; deleting
dbt_project/target/metrics_staging_built.json makes the next `metrics run` rebuild."""
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


def _nodes(manifest: dict, group: str) -> list[dict]:
    """staging: the seeds and models tagged staging; catalog: the metric_catalog model."""
    if group == "catalog":
        return [n for n in manifest.get("nodes", {}).values()
                if n.get("resource_type") == "model" and n.get("name") == "metric_catalog"]
    return [n for n in manifest.get("nodes", {}).values()
            if "staging" in (n.get("tags") or []) and n.get("resource_type") in ("model", "seed")]


def _key(wh: Warehouse, group: str) -> str:
    return warehouse_identity(wh) + ("" if group == "staging" else f"#{group}")


def fingerprint(paths: ProjectPaths, manifest: dict, group: str = "staging") -> str:
    digest = hashlib.sha256(macros_digest(paths.root / "macros").encode())
    for node in sorted(_nodes(manifest, group), key=lambda n: n["unique_id"]):
        digest.update(json.dumps([node["unique_id"], node.get("checksum"), node.get("config"), node.get("columns"),
                                  node.get("relation_name")], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _read(paths: ProjectPaths) -> dict:
    try:
        return json.loads(_state_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def up_to_date(wh: Warehouse, manifest: dict, group: str = "staging") -> bool:
    """True when the group's last successful build on this warehouse had these definitions
    and every relation of it still exists."""
    nodes = _nodes(manifest, group)
    if (group == "catalog" and not nodes) or _read(wh.paths).get(_key(wh, group)) != fingerprint(wh.paths, manifest, group):
        return False
    # the seeds too, in their own schema: a dropped seed table was never rebuilt, and every run failed
    with wh.reading():
        return all(wh.relation_exists(n.get("alias") or n["name"], n.get("schema"))
                   for n in nodes if n.get("resource_type") in ("model", "seed"))


def record_built(wh: Warehouse, manifest: dict, group: str = "staging") -> None:
    state = _read(wh.paths)
    state[_key(wh, group)] = fingerprint(wh.paths, manifest, group)
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

"""How generated dbt models appear in Dagster: grouped by metric domain, owned by the
metrics' owners, tagged per metric so one metric's assets can be selected, with the
source YAML paths and the generated SQL in the metadata."""
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dagster import AssetSpec, AutomationCondition, MetadataValue
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

# the owners Dagster accepts on an asset (dagster._core.definitions.utils.is_valid_owner):
# an address by its email rule, or `team:<name>`; any other owner text (a bare team name,
# `ops@corp.internal`) stays in the metric's metadata and alerts, but is not handed to
# Dagster, which refuses to load definitions over it
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,7}\b")


def dagster_owner(owner: str) -> bool:
    return bool(_EMAIL.fullmatch(owner)) or (owner.startswith("team:") and len(owner) > len("team:"))


def _metrics_meta(props: Mapping[str, Any]) -> dict:
    meta = (props.get("config") or {}).get("meta") or props.get("meta") or {}
    return meta.get("metrics") or {}


def metric_tag(name: str) -> str:
    """`metric_<name>`. A Dagster tag key has at most 63 characters and a metric name up
    to 60: a name over 56 keeps its first 47 characters and a hash of the whole."""
    tag = f"metric_{name}"
    if len(tag) <= 63:
        return tag
    return f"metric_{name[:47]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class MetricsTranslator(DagsterDbtTranslator):
    def __init__(self, conditions: Mapping[str, AutomationCondition] | None = None):
        """`conditions`: the automation condition of each grain's rollups, if any."""
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_code_references=False))
        self._conditions = dict(conditions or {})

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> AssetSpec:
        """The catalog lists built metrics: it depends on the active series views (its SQL
        reads none of them), so Dagster orders it after the rollups of every grain."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        if _metrics_meta(self.get_resource_props(manifest, unique_id)).get("kind") != "catalog":
            return spec
        series = sorted(uid for uid, node in manifest.get("nodes", {}).items()
                        if node.get("resource_type") == "model"
                        and _metrics_meta(node).get("kind") == "series" and _metrics_meta(node).get("lifecycle") == "active")
        return spec.merge_attributes(deps=[super(MetricsTranslator, self).get_asset_spec(manifest, uid, project).key
                                           for uid in series])

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition | None:
        # the series view too: anomalies_<grain> reads it, so without it automation rebuilt a
        # week's rollups and never re-scored them (the anomaly asset's dep never updated)
        meta = _metrics_meta(dbt_resource_props)
        return self._conditions.get(meta.get("grain")) if meta.get("kind") in ("rollup", "series") else None

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        meta = _metrics_meta(dbt_resource_props)
        if meta.get("kind") == "rollup":
            domains = sorted({m["domain"] for m in meta["metrics"]})
            return domains[0] if len(domains) == 1 else "shared_sources"
        if meta.get("kind") in ("series", "catalog"):
            return "metric_series"
        return "staging"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        meta = _metrics_meta(dbt_resource_props)
        owners = sorted({m.get("owner") for m in meta.get("metrics", []) if isinstance(m, dict) and m.get("owner")})
        return [o for o in owners if dagster_owner(o)]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        meta = _metrics_meta(dbt_resource_props)
        names = [m["name"] if isinstance(m, dict) else m for m in meta.get("metrics", [])]
        for name in names:
            tags[metric_tag(name.split("__")[0])] = ""
        if meta.get("grain"):
            tags["grain"] = meta["grain"]
        return tags

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        out = dict(super().get_metadata(dbt_resource_props))
        meta = _metrics_meta(dbt_resource_props)
        if meta.get("kind") == "rollup":
            rows = "\n".join(f"| {m['name']} | {m.get('owner') or ''} | {m.get('description') or ''} | {m['path']} |"
                             for m in meta["metrics"])
            out["metrics"] = MetadataValue.md("| metric | owner | description | YAML |\n|---|---|---|---|\n" + rows)
            out["metric_yaml_paths"] = MetadataValue.json(sorted({m["path"] for m in meta["metrics"]}))
        if meta:
            out["generated_sql"] = MetadataValue.md(f"```sql\n{dbt_resource_props.get('raw_code', '')}\n```")
        return out

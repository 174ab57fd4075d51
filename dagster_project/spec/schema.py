"""The JSON Schemas of a metric file and of `alerts.yml`, generated from the pydantic
models, for editors."""
from __future__ import annotations

import datetime as dt
import json

from pydantic.json_schema import GenerateJsonSchema

from .raw import MetricSpec

ALERTS_SCHEMA = "docs/alerts.schema.json"
# what alerting.config.parse_duration accepts: `30s`, `4h`, `1h30m`, `2d`, `1w` (or the number 0)
DURATION_PATTERN = r"^\s*(?=\S)(?:\d+w)?\s*(?:\d+d)?\s*(?:\d+h)?\s*(?:\d+m)?\s*(?:\d+s)?\s*$"


class _Schema(GenerateJsonSchema):
    def timedelta_schema(self, schema):
        # pydantic would say ISO 8601 (`PT4H`); alerts.yml writes `4h`
        return {"anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}]}

    def encode_default(self, dft):
        if isinstance(dft, dt.timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def format_duration(value: dt.timedelta) -> str:
    """`1h30m` for 5400 seconds: the way alerts.yml writes it."""
    seconds, out = int(value.total_seconds()), ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


def _render(schema: dict, title: str) -> str:
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return json.dumps(schema, indent=2, sort_keys=True, default=str) + "\n"


def render_schema() -> str:
    return _render(MetricSpec.model_json_schema(), "Metric definition (metrics/<domain>/<name>.yml)")


def render_alerts_schema() -> str:
    from ..alerting.config import AlertsConfig
    return _render(AlertsConfig.model_json_schema(schema_generator=_Schema, by_alias=True),
                   "Alerting configuration (alerts.yml)")

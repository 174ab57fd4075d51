"""The JSON Schema of a metric file, generated from the pydantic models, for editors."""
from __future__ import annotations

import json

from .raw import MetricSpec


def render_schema() -> str:
    schema = MetricSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Metric definition (metrics/<domain>/<name>.yml)"
    return json.dumps(schema, indent=2, sort_keys=True, default=str) + "\n"

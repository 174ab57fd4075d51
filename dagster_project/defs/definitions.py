"""The code location `dagster dev -w workspace.yaml` loads."""
from .builder import build_definitions

defs = build_definitions()

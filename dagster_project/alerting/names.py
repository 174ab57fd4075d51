"""Names the CLI's argument parser needs, apart from the pydantic models in config.py (a
read such as `metrics series` builds the whole parser and should not import them)."""

ALERTS_FILE = "alerts.yml"
MATCH_KEYS = ("metric", "domain", "owner", "grain", "severity", "tag", "kind", "source")

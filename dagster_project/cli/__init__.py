"""The `metrics` command."""

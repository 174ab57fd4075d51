"""Dagster definitions: the only package that imports dagster. `definitions.py` holds
the `defs` object that `dagster dev -w workspace.yaml` loads; `builder.py` merges the
definitions each domain module returns (`collection.py`, `rollups.py`)."""

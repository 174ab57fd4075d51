"""Metrics as code: YAML metric definitions compiled to dbt rollups, run by Dagster."""

"""Pull requests for metrics: what a change to the metric YAML does to the warehouse.

`gitref` reads the project as it was at a git ref, `diff` compares the resolved metrics
of two projects, `plan` turns the comparison into the partitions a backfill recomputes,
`render` prints it as text, Markdown or JSON. No warehouse, no dbt, no dagster import."""

"""Pull requests for metrics: what a change to the metric YAML does to the warehouse.

`gitref` reads the project as it was at a git ref, `diff` compares the resolved metrics
of two projects, `plan` turns the comparison into the partitions a backfill recomputes,
`render` prints it as text, Markdown or JSON. None of these import a warehouse driver,
dbt or dagster, so a PR check runs in seconds; only `values` (`metrics diff --values`)
builds both definitions with dbt into scratch schemas, imported only for that flag."""

"""Build the Dagster definitions for a metrics project: one module per domain returns
its definitions (collection.py: the demo's raw data; rollups.py: staging, rollups, series,
catalog, their jobs, schedules and sensor; anomalies.py; alerts.py: the alert sensor),
merged here with the shared dbt resource."""
from dagster import Definitions

from ..validation.project import load_project
from .alerts import alert_definitions
from .collection import collection_definitions
from .resources import metrics_dbt_resource, project_paths
from .rollups import rollup_definitions


def build_definitions() -> Definitions:
    loaded = load_project(project_paths())
    if not loaded.ok:
        raise ValueError("metric YAML has problems (run `metrics validate`):\n" + "\n".join(map(str, loaded.issues)))
    project = loaded.project
    built = [m for m in project.built() if m.status == "active"]
    # partitions begin at the bucket that holds the earliest active metric start
    earliest = min((m.start for m in built), default=project.config.start)
    return Definitions.merge(
        collection_definitions(project, earliest),
        rollup_definitions(project, earliest),
        alert_definitions(project_paths()),
        Definitions(resources={"dbt": metrics_dbt_resource()}),
    )

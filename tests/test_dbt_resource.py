"""The dbt resource's shortcut: the dbt version it reports without a subprocess is the one
the executable Dagster runs reports itself."""
from __future__ import annotations

import re
import subprocess

from dagster_project.defs.resources import MetricsDbtCliResource, dbt_executable, metrics_dbt_resource


def test_reported_dbt_version_is_the_executables():
    out = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True, check=True).stdout
    core = re.search(r"(\d+\.\d+\.\d+)", out).group(1)
    resource = metrics_dbt_resource()
    assert isinstance(resource, MetricsDbtCliResource)
    assert str(resource._cli_version) == core
    assert resource._initialize_dbt_core_adapter([]) is None

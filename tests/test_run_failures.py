"""What `metrics run` prints of a failed Dagster run (defs/runner.py failure_lines), read
from the events of real in-process runs: a Failure's description split into its parts,
else the root cause's first line (not Dagster's "Exceeded max_retries" wrapper), with the
step's retries; a resource that cannot start; and the stack traces kept in full."""
from __future__ import annotations

from dagster import DagsterInstance, Failure, RetryPolicy, job, op, resource

from dagster_project.defs.runner import failure_lines


@op(retry_policy=RetryPolicy(max_retries=2))
def _flaky():
    raise RuntimeError("the warehouse went away")


@job
def _retried():
    _flaky()


@resource
def _broken(_):
    raise RuntimeError("cannot start dbt")


@op(required_resource_keys={"dbt"})
def _needs_dbt():
    pass


@job(resource_defs={"dbt": _broken})
def _no_resource():
    _needs_dbt()


@op
def _refused():
    raise Failure(description="duckdb: rollup_x: Catalog Error: no column y; duckdb: rollup_z: Catalog Error: no column y")


@job
def _failure():
    _refused()


def _lines(job_def) -> tuple[list[str], str]:
    with DagsterInstance.ephemeral() as instance:
        result = job_def.execute_in_process(raise_on_error=False, instance=instance)
        assert not result.success
        return failure_lines(result.all_events)


def test_a_retried_error_is_its_root_cause_with_the_retries():
    lines, trace = _lines(_retried)
    assert lines == ["RuntimeError: the warehouse went away (after 2 retries)"]
    assert 'raise RuntimeError("the warehouse went away")' in trace  # the stack, kept


def test_a_resource_that_cannot_start_is_named():
    """Only step failures were read: the run failed with no line saying why."""
    lines, trace = _lines(_no_resource)
    assert lines == ["RuntimeError: cannot start dbt"] and "RESOURCE_INIT_FAILURE" in trace


def test_a_failure_description_is_split_into_its_parts():
    lines, _ = _lines(_failure)
    assert lines == ["duckdb: rollup_x: Catalog Error: no column y", "duckdb: rollup_z: Catalog Error: no column y"]

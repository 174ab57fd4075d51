"""What `metrics run` prints of a failed Dagster run (defs/runner.py failure_lines), read
from the events of real in-process runs: a Failure's description split into its parts,
else the root cause's first line (not Dagster's "Exceeded max_retries" wrapper), with the
step's retries; a resource that cannot start; and the stack traces kept in full."""
from __future__ import annotations

import uuid

from dagster import DagsterInstance, Failure, RetryPolicy, job, op, resource
from dagster._core.errors import DagsterExecutionInterruptedError

from dagster_project.defs.rollup_assets import INTERRUPTED
from dagster_project.defs.runner import failure_lines
from dagster_project.warehouse.connection import WarehouseError


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


class SourceUnreadable(Exception):
    pass


@op(retry_policy=RetryPolicy(max_retries=1))
def _warehouse_gone():
    raise WarehouseError("postgres: could not serialize access")


@op
def _own_error():
    raise SourceUnreadable("orders.csv: no header")


@job
def _warehouse_retried():
    _warehouse_gone()


@job
def _own():
    _own_error()


def _lines(job_def) -> tuple[list[str], str]:
    with DagsterInstance.ephemeral() as instance:
        result = job_def.execute_in_process(raise_on_error=False, instance=instance)
        assert not result.success
        return failure_lines(result.all_events)


def test_a_retried_error_is_its_root_cause_with_the_retries():
    lines, trace = _lines(_retried)
    assert lines == ["RuntimeError: the warehouse went away (after 2 retries)"]
    # the stack, kept once (the run's failure event repeats the step's error)
    assert trace.count('raise RuntimeError("the warehouse went away")') == 1, trace


def test_a_resource_that_cannot_start_is_named():
    """Only step failures were read: the run failed with no line saying why."""
    lines, trace = _lines(_no_resource)
    assert lines == ["RuntimeError: cannot start dbt"] and "RESOURCE_INIT_FAILURE" in trace


def test_a_failure_description_is_split_into_its_parts():
    lines, _ = _lines(_failure)
    assert lines == ["duckdb: rollup_x: Catalog Error: no column y", "duckdb: rollup_z: Catalog Error: no column y"]


def test_an_error_worded_for_the_user_is_its_message_and_others_their_class():
    """A root cause printed with its module path: `dagster_project.warehouse.connection.
    WarehouseError: postgres: ...` (review)."""
    assert _lines(_warehouse_retried)[0] == ["postgres: could not serialize access (after 1 retry)"]
    assert _lines(_own)[0] == ["SourceUnreadable: orders.csv: no header"]


@op
def _interrupted_outside_our_code():
    # what Dagster raises in a step when a Ctrl-C arrives between two events of dbt's
    raise DagsterExecutionInterruptedError()


@job
def _interrupted():
    _interrupted_outside_our_code()


def test_an_interrupt_dagster_caught_itself_reads_as_interrupted():
    """Not `DagsterExecutionInterruptedError` as a failure: `metrics run` said "the build
    failed" and exited 1 after a Ctrl-C during dbt."""
    assert _lines(_interrupted)[0] == [INTERRUPTED]


def test_a_run_stopped_before_it_started_is_closed_as_canceled():
    """A Ctrl-C just as `metrics run` began a job left the run NOT_STARTED in the UI's
    history for ever; a run that ended keeps its status."""
    from dagster import DagsterRunStatus

    from dagster_project.defs.runner import close_unstarted
    with DagsterInstance.ephemeral() as instance:
        unstarted = instance.create_run_for_job(job_def=_own, run_id=str(uuid.uuid4()))
        assert instance.get_run_by_id(unstarted.run_id).status == DagsterRunStatus.NOT_STARTED
        close_unstarted(instance, unstarted.run_id)
        assert instance.get_run_by_id(unstarted.run_id).status == DagsterRunStatus.CANCELED
        ended = _interrupted.execute_in_process(raise_on_error=False, instance=instance)
        close_unstarted(instance, ended.run_id)
        assert instance.get_run_by_id(ended.run_id).status == DagsterRunStatus.FAILURE
        close_unstarted(instance, str(uuid.uuid4()))  # never created: nothing to do


def test_only_an_errors_own_words_make_it_worth_a_retry():
    """`timeout` matched as a substring of the whole detail, which names the failing
    models and metrics: a missing table under a metric named `orders_timeout` was retried
    three times (23 s instead of 1)."""
    from dagster_project.defs.rollup_assets import is_transient
    assert not is_transient(["Catalog Error: Table with name orders_timeout does not exist!"])
    assert not is_transient(["Parser Error: syntax error at or near \"timeouts\""])
    assert is_transient(["IO Error: Could not set lock on file \"metrics.duckdb\": Conflicting lock is held"])
    assert is_transient(["connection to server at \"127.0.0.1\", port 5432 failed: Connection refused"])
    assert is_transient(["canceling statement due to statement timeout"])
    assert is_transient([None])  # dbt stopped before any model, without a word: its cause unknown
    assert not is_transient(["Compilation Error in model stg_orders: 'ref' is undefined"])

"""dbt assets: staging (unpartitioned), one partitioned @dbt_assets per grain, and the
metric catalog (unpartitioned, after the series views of every grain)."""
import re
import sys
from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    Backoff,
    BackfillPolicy,
    Failure,
    Jitter,
    RetryPolicy,
    TimeWindowPartitionsDefinition,
)
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_dbt import DbtCliResource, dbt_assets

from ..printable import one_line
from ..warehouse.connection import default_target
from ..warehouse.dbt_runner import environ, warehouse_message
from ..warehouse.lock import WarehouseLockTimeout, warehouse_lock
from .partitions import window_env
from .step_times import DBT_SECONDS
from .resources import metrics_dbt_project, project_paths
from .translator import MetricsTranslator

# Transient warehouse trouble is retried with backoff; anything else (bad SQL, a missing
# table) fails at once, naming the model.
WAREHOUSE_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
TRANSIENT = ("could not connect", "connection refused", "connection reset", "timeout", "timed out",
             "could not set lock", "conflicting lock", "server closed the connection", "too many connections")
# a step stopped by Ctrl-C fails with this, and is not retried (the retry policy retried it:
# one Ctrl-C did not stop `metrics run`); runner.py turns it into exit 130
INTERRUPTED = "interrupted (Ctrl-C)"
# Embedded warehouses allow one writer per file: every step that writes them shares this pool.
EMBEDDED_POOL = "embedded_warehouse_writer"
# the generated view listing the built metrics (compiler/writer.py)
CATALOG_MODEL = "metric_catalog"


def warehouse_pool(target: str | None = None) -> str | None:
    return EMBEDDED_POOL if (target or default_target()) in ("duckdb", "clickhouse") else None


def failed_nodes(invocation) -> list[tuple[str, str]]:
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artifact: dbt failed before running any node
        return []
    return [(r["unique_id"].split(".")[-1], warehouse_message(r.get("message") or r["status"]))
            for r in results if r.get("status") in ("error", "fail", "runtime error")]


def metrics_of(invocation, model: str) -> str:
    """`metric x (metrics/d/x.yml), ...` for a generated model, from its dbt meta: a user
    reads which YAML file to fix before which generated model failed."""
    try:
        nodes = invocation.manifest.get("nodes", {})
    except Exception:  # no manifest: nothing to add
        return ""
    for node in nodes.values():
        if node.get("name") != model:
            continue
        meta = ((node.get("config") or {}).get("meta") or {}).get("metrics") or {}
        listed = [m for m in meta.get("metrics") or [] if isinstance(m, dict) and m.get("path")]
        # an inline ratio side is listed under its ratio's file
        named = sorted({(m["name"].split("__")[0], m["path"]) for m in listed})
        return ", ".join(f"metric {name} ({path})" for name, path in named)
    return ""


def _dbt_seconds(invocation) -> float:
    try:
        return float(invocation.get_artifact("run_results.json").get("elapsed_time") or 0.0)
    except Exception:  # no artifact: dbt stopped before running a node
        return 0.0


def _one_part(text: str) -> str:
    """dbt's message as one part of a Failure description (the runner splits those at
    `;`), on one line and at most 500 characters."""
    text = one_line(text).replace(";", ",")
    return text if len(text) <= 500 else text[:499] + "…"


def _prefix(text: str) -> str:
    return f"{text}: " if text else ""


def lock_waiting(context) -> Callable[[str], None]:
    """Says a step waits for the warehouse in its log and on stderr: `metrics run` shows
    Dagster's console only for critical events (each error reaches the user once, from
    the runner), and a wait may last minutes."""
    def say(message: str) -> None:
        context.log.warning(message)
        print(f"      {message}", file=sys.stderr, flush=True)
    return say


def say_retry(context, error: str) -> None:
    """A step about to be retried says so (a retry's backoff and a held warehouse made a
    run print nothing for half a minute: it looked hung)."""
    attempt = getattr(context, "retry_number", 0) + 1
    if attempt <= WAREHOUSE_RETRY.max_retries:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        lock_waiting(context)(f"warehouse trouble ({first}): retry {attempt} of {WAREHOUSE_RETRY.max_retries}")


_TRANSIENT = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in TRANSIENT) + r")\b", re.IGNORECASE)


def is_transient(errors: list) -> bool:
    """Whether dbt's errors are warehouse trouble worth a retry: a marker of TRANSIENT as a
    word of an error's own text (a metric or model named `orders_timeout` in the message
    around it made a missing table retried three times). dbt stopped before any model
    with no error text: retried, its cause unknown."""
    return any(e is None or _TRANSIENT.search(str(e)) for e in errors)


def run_dbt_build(context: AssetExecutionContext, dbt: DbtCliResource, env: dict[str, str]):
    """One `dbt build` of this step's models, holding the warehouse's writer lock (runs
    over overlapping windows serialize; the pool only covers runs of one Dagster instance)."""
    target = default_target()
    try:
        with warehouse_lock(target, project_paths(), on_wait=lock_waiting(context)), environ(env):
            invocation = dbt.cli(["build"], context=context, raise_on_error=False)
            yield from invocation.stream()
        DBT_SECONDS.report(_dbt_seconds(invocation))
    except WarehouseLockTimeout as err:
        raise Failure(description=str(err), allow_retries=False) from None
    except (KeyboardInterrupt, DagsterExecutionInterruptedError):
        raise Failure(description=INTERRUPTED, allow_retries=False) from None
    if not invocation.is_successful():
        nodes = failed_nodes(invocation)
        stopped = getattr(invocation.process, "error", None)  # defs/dbt_in_process.py
        detail = "; ".join(f"{_prefix(metrics_of(invocation, name))}{target}: {name}: {msg}" for name, msg in nodes) \
            or f"{target}: dbt failed before running a model{f': {_one_part(stopped)}' if stopped else ''}"
        transient = is_transient([msg for _, msg in nodes] if nodes else [stopped])
        if transient:
            say_retry(context, detail)
        raise Failure(description=detail, allow_retries=transient,
                      metadata={"failed_models": [n for n, _ in nodes]})


def _unpartitioned(name: str, select: str):
    @dbt_assets(
        manifest=metrics_dbt_project().manifest_path,
        select=select,
        name=name,
        dagster_dbt_translator=MetricsTranslator(),
        retry_policy=WAREHOUSE_RETRY,
        pool=warehouse_pool(),
    )
    def _assets(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from run_dbt_build(context, dbt, {"METRICS_RUN_ID": context.run.run_id})

    return _assets


def staging_assets():
    """Seeds and staging views (unpartitioned)."""
    return _unpartitioned("staging", "tag:staging")


def rollup_assets(grain: str, partitions_def: TimeWindowPartitionsDefinition, condition: AutomationCondition | None = None):
    """The rollups and the series view of one grain. A backfill is one run over the whole
    range (single-run policy): one dbt invocation, one parse, one scan per source.
    `condition`: the rollups' automation condition (weeks and months follow their days)."""

    @dbt_assets(
        manifest=metrics_dbt_project().manifest_path,
        select=f"tag:grain_{grain}",
        exclude="tag:metrics_draft",
        name=f"rollups_{grain}",
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        dagster_dbt_translator=MetricsTranslator({grain: condition} if condition else None),
        retry_policy=WAREHOUSE_RETRY,
        pool=warehouse_pool(),
    )
    def _assets(context: AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        yield from run_dbt_build(context, dbt, window_env(window.start, window.end, context.run.run_id))

    return _assets


def catalog_assets():
    """The metric catalog (unpartitioned). Its asset depends on the series view of every
    grain (MetricsTranslator), so Dagster builds it after the rollups, and `metrics run`
    builds it last, only when every grain succeeded: a metric whose rollup failed is never
    listed as built."""
    return _unpartitioned("catalog", CATALOG_MODEL)

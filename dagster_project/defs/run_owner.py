"""Runs whose process died, and the warehouse writer slot they held.

`metrics run` executes its jobs in its own process. Killed hard (SIGKILL, the OOM
killer, a closed terminal's session), it leaves its Dagster run STARTED for ever, still
holding its slot in the embedded warehouses' pool (dagster_home.yaml allows one writer):
every later run on the instance then waited on that slot without a word, ignoring
Ctrl-C, and the automation read the dead run as in progress. Each run `metrics run`
starts carries its process (host, pid and the pid's start time, so a reused pid is not
mistaken for it); a later `metrics run` on the same host marks the runs whose process is
gone as failed and frees their slots. A slot held by a live run is waited for here, with
a line saying which run holds it, where Ctrl-C stops the wait."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

OWNER_TAG = "metrics/process"  # "<host>:<pid>:<start time of the pid>"
_UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.CANCELING]


def _started(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux), None when it is gone;
    "" when the system does not say (its existence is checked only)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            # the command name (field 2) may hold spaces: fields are counted after its ')'
            return stat.read_text().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def owner_tag() -> dict[str, str]:
    pid = os.getpid()
    return {OWNER_TAG: f"{socket.gethostname()}:{pid}:{_started(pid) or ''}"}


def _gone(tag: str) -> bool:
    host, _, rest = tag.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: not ours to judge
    now = _started(int(pid))
    return now is None or bool(started) and bool(now) and now != started


def reclaim_dead_runs(instance: DagsterInstance, progress: Callable[[str], None]) -> None:
    """Mark failed each unfinished run a `metrics run` on this host started whose
    process is gone, and free the pool slots it held."""
    for run in instance.get_runs(filters=RunsFilter(statuses=_UNFINISHED)):
        tag = run.tags.get(OWNER_TAG)
        if not tag or not _gone(tag):
            continue
        message = "its `metrics run` process ended without finishing it (killed?)"
        if run.status == DagsterRunStatus.NOT_STARTED:
            instance.report_run_canceled(run, message=message)
        else:
            instance.report_run_failed(run, message=message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        progress(f"      run {run.run_id}: {message}: marked failed, its warehouse writer slot freed")


def wait_for_pool(instance: DagsterInstance, pool: str | None, progress: Callable[[str], None],
                  poll: float = 1.0) -> None:
    """Return when no other run holds a slot of `pool` (None: no pool), saying once which
    run it waits for. Ctrl-C stops the wait (a KeyboardInterrupt)."""
    if pool is None or not instance.event_log_storage.supports_global_concurrency_limits:
        return
    said = None
    while True:
        info = instance.event_log_storage.get_concurrency_info(pool)
        limit = info.limit if info.limit is not None else info.slot_count
        holders = sorted(info.active_run_ids)
        if not limit or len(holders) < limit:
            return
        if holders != said:
            progress(f"      waiting for the warehouse writer slot (pool `{pool}`): held by run(s) "
                     f"{', '.join(holders)} (the UI's Runs page shows them; Ctrl-C stops waiting)")
            said = holders
        time.sleep(poll)

"""Runs whose process died, and the warehouse writer slot they held.

`metrics run` executes its jobs in its own process. Killed hard (SIGKILL, the OOM
killer, a closed terminal's session), it leaves its Dagster run STARTED for ever, still
holding its slot in the embedded warehouses' pool (dagster_home.yaml allows one writer):
every later run on the instance then waited on that slot without a word, ignoring
Ctrl-C, and the automation read the dead run as in progress.

Each run `metrics run` starts carries its process: the run id it was made for (a
re-execution from the UI copies the tags of its parent: a copied tag names another run,
and is not judged), the host, the PID namespace (two containers may share a host name
and pids), the pid and the pid's start time (a reused pid is not the same process). A
later `metrics run` in the same host and namespace marks such a run whose process is gone
failed (canceled, if it never started) and frees its slots. A slot held by a live run is
waited for, with a line naming the run, and Ctrl-C stops the wait; a slot still held by a
finished run (one forced to stop from the UI) is freed."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

OWNER_TAG = "metrics/process"  # "<run id>|<host>|<pid namespace>|<pid>|<start time of the pid>"
_UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.CANCELING]


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (or /proc hidden from us): it exists
        return True
    return True


def _started(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), "" when not readable."""
    try:
        # the command name (field 2) may hold spaces: fields are counted after its ')'
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_tag(run_id: str) -> dict[str, str]:
    pid = os.getpid()
    return {OWNER_TAG: "|".join((run_id, socket.gethostname(), _namespace(), str(pid), _started(pid)))}


def _gone(run_id: str, tag: str) -> bool:
    """True only when the tag was made for this run, on this host and PID namespace,
    and its process has ended (or the pid now belongs to a later process)."""
    parts = tag.split("|")
    if len(parts) != 5:
        return False
    tagged_run, host, namespace, pid, started = parts
    if tagged_run != run_id or host != socket.gethostname() or namespace != _namespace() or not pid.isdigit():
        return False  # copied to another run, or another machine's or container's process: not ours to judge
    if not _alive(int(pid)):
        return True
    now = _started(int(pid))
    return bool(started) and bool(now) and now != started


def reclaim_dead_runs(instance: DagsterInstance, progress: Callable[[str], None]) -> None:
    """Mark failed each unfinished run a `metrics run` here started whose process is gone,
    and free the pool slots it held."""
    for run in instance.get_runs(filters=RunsFilter(statuses=_UNFINISHED)):
        tag = run.tags.get(OWNER_TAG)
        if not tag or not _gone(run.run_id, tag):
            continue
        message = "its `metrics run` process ended without finishing it (killed?)"
        if run.status == DagsterRunStatus.NOT_STARTED:
            instance.report_run_canceled(run, message=message)
            what = "marked canceled"
        else:
            instance.report_run_failed(run, message=message)
            what = "marked failed"
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        progress(f"      run {run.run_id}: {message}: {what}, its warehouse writer slot freed")


def _free_finished(instance: DagsterInstance, run_ids: set[str]) -> set[str]:
    """Free the slots of the runs that have finished (or are unknown to the instance);
    return the others."""
    held = set()
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        else:
            held.add(run_id)
    return held


def wait_for_pool(instance: DagsterInstance, pool: str | None, progress: Callable[[str], None],
                  poll: float = 1.0) -> None:
    """Return when no live run holds a slot of `pool` (None: no pool), saying once which
    run it waits for. Each poll reclaims a holder that has died meanwhile. Ctrl-C stops
    the wait (a KeyboardInterrupt)."""
    if pool is None or not instance.event_log_storage.supports_global_concurrency_limits:
        return
    said = None
    while True:
        info = instance.event_log_storage.get_concurrency_info(pool)
        limit = info.limit if info.limit is not None else info.slot_count
        if not limit or len(info.active_run_ids) < limit:
            return
        holders = sorted(_free_finished(instance, info.active_run_ids))
        if len(holders) < limit:
            continue
        if holders != said:
            progress(f"      waiting for the warehouse writer slot (pool `{pool}`): held by run(s) "
                     f"{', '.join(holders)} (the UI's Runs page shows them; Ctrl-C stops waiting)")
            said = holders
        time.sleep(poll)
        reclaim_dead_runs(instance, progress)

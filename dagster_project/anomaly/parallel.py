"""Batches on several cores at once, in threads: a batch spends its time in numpy's
sorts and reductions over whole arrays, which release the GIL, so threads share the
work without copying a series to another process. A batch's rows do not depend on the
other batches (score.py), so the rows are the same in any order and with any number of
threads; only the wall time changes (bench/bench_orchestration.py). A batch checks
between its chunks whether the others stopped (`check_stop`), so an error or a Ctrl-C
ends them all within a chunk, not a batch."""
from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

THREADS_ENV = "METRICS_SCORING_THREADS"
MAX_THREADS = 8  # the default's cap: each thread holds one batch's windows in memory
# the event run_all sets when its calls are to stop; None outside run_all's threads
_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("anomaly_scoring_stop", default=None)


class Stopped(Exception):
    """A batch given up because another failed or the caller was interrupted."""


def check_stop() -> None:
    """Between the chunks of a batch: raise Stopped when run_all is stopping its calls."""
    stop = _STOP.get()
    if stop is not None and stop.is_set():
        raise Stopped()


def scoring_threads() -> int:
    """METRICS_SCORING_THREADS when set (1: no threads), else the cores this process may
    use, at most MAX_THREADS."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1 (1: score on one core), got {raw!r}")
        return int(raw)
    try:
        cores = len(os.sched_getaffinity(0))  # a container's or taskset's share, not the machine's
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def run_all(calls: list[tuple[float, Callable[[], None]]]) -> None:
    """Run every call (its cost, the function), the costliest first so that the last
    ones to start are short. Each thread runs in a copy of the caller's context (numpy's
    error state: a caller's np.errstate holds inside). The first error stops the calls
    not yet started and is raised; so is an interrupt (Ctrl-C), once the calls running
    have reached their next chunk (check_stop)."""
    order = [fn for _, fn in sorted(calls, key=lambda c: -c[0])]
    threads = min(scoring_threads(), len(order))
    if threads <= 1:
        for fn in order:
            fn()
        return
    stop = threading.Event()

    def submit(fn):
        context = contextvars.copy_context()
        context.run(_STOP.set, stop)
        return pool.submit(context.run, fn)

    pool = ThreadPoolExecutor(threads, thread_name_prefix="anomaly-scoring")
    try:
        for future in [submit(fn) for fn in order]:
            future.result()
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


"""Batches on several cores at once, in threads: a batch spends its time in numpy's
sorts and reductions over whole arrays, which release the GIL, so threads share the
work without copying a series to another process. A batch's rows do not depend on the
other batches (score.py), so the rows are the same in any order and with any number of
threads; only the wall time changes (bench/bench_orchestration.py)."""
from __future__ import annotations

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

THREADS_ENV = "METRICS_SCORING_THREADS"
MAX_THREADS = 8  # the default's cap: each thread holds one batch's windows in memory


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
    have ended (a batch takes seconds)."""
    order = [fn for _, fn in sorted(calls, key=lambda c: -c[0])]
    threads = min(scoring_threads(), len(order))
    if threads <= 1:
        for fn in order:
            fn()
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="anomaly-scoring")
    try:
        for future in [pool.submit(contextvars.copy_context().run, fn) for fn in order]:
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


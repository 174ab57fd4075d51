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
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
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
    """METRICS_SCORING_THREADS when set (1: no threads), else the CPUs this process may
    run on, at most MAX_THREADS."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # not '²' or '٣'
            raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1 (1: score on one core), got {raw!r}")
        return int(raw)
    try:
        cores = len(os.sched_getaffinity(0))  # a cpuset's or taskset's CPUs (not a CPU quota's share)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def run_all(calls: list[tuple[float, Callable[[], None]]]) -> None:
    """Run every call (its cost, the function), the costliest first so that the last
    ones to start are short. Each thread runs in a copy of the caller's context (numpy's
    error state: a caller's np.errstate holds inside). An error in any call stops the
    others (those running at their next chunk: check_stop; those not started at once),
    and the error of the first call in that order that failed is raised, as on one
    thread; an interrupt (Ctrl-C) stops them the same way and is raised."""
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
        futures = [submit(fn) for fn in order]
        wait(futures, return_when=FIRST_EXCEPTION)  # every one done, or one failed
    except BaseException:  # an interrupt
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    failed = any(f.exception() is not None for f in futures if f.done())
    if failed:
        stop.set()
    pool.shutdown(wait=True, cancel_futures=failed)
    if failed:
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])

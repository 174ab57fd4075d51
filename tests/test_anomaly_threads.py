"""score_many runs its batches on several threads (anomaly/parallel.py): the rows must be
the same as on one thread and as each series scored alone, whatever the thread count."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

import dagster_project.anomaly.score as score_module
from dagster_project.anomaly import DetectorSettings, SeriesJob, parallel, score_many, score_series
from tests.test_anomaly_library import HOURLY, START, WEEKLY, frame


def _jobs() -> list[SeriesJob]:
    """Series of every shape at the hour and day grains, with gaps, incidents and an
    excluded range: several batches (one per shape, grain and settings)."""
    rng = np.random.default_rng(31)
    jobs = []
    for grain, n in (("hour", 24 * 50), ("day", 140)):
        step = np.arange(n)
        cycle = HOURLY[step % 24] * WEEKLY[(step // 24) % 7] if grain == "hour" else WEEKLY[step % 7]
        end = START + (dt.timedelta(hours=n) if grain == "hour" else dt.timedelta(days=n))
        scored_from = end - (dt.timedelta(days=6) if grain == "hour" else dt.timedelta(days=40))
        excluded = DetectorSettings(exclude=((START + dt.timedelta(days=20), START + dt.timedelta(days=23)),))
        for level in (3, 40, 900):
            rate = level * cycle
            counts = rng.poisson(rate).astype(float)
            counts[n - 30] = counts[n - 30] * 3 + 10
            counts[n // 2: n // 2 + 4] = np.nan
            visits = rng.poisson(rate * 5).astype(float) + 1
            orders = rng.binomial(visits.astype(int), 0.1).astype(float)
            orders[n - 20] = 0
            amounts = 20 + rate * np.exp(rng.normal(0, 0.05, n))
            for shape, f in (("count", frame(counts, grain)),
                             ("ratio", frame(orders / visits, grain, numerator=orders, denominator=visits)),
                             ("fraction", frame(amounts, grain))):
                for settings in (DetectorSettings(), excluded):
                    jobs.append(SeriesJob(f, shape, grain, settings, scored_from, end, end, 3, f"{shape} {level}"))
    return jobs


def test_threads_give_the_rows_of_one_thread_and_of_each_series_alone(monkeypatch):
    jobs = _jobs()
    names = set()
    run = score_module._run

    def spy(*args, **kwargs):  # which threads scored a batch: the threaded path must have run
        names.add(threading.current_thread().name)
        return run(*args, **kwargs)

    monkeypatch.setattr(score_module, "_run", spy)
    monkeypatch.setenv(parallel.THREADS_ENV, "1")
    one = score_many(jobs)
    assert names == {threading.current_thread().name}
    names.clear()
    monkeypatch.setenv(parallel.THREADS_ENV, "3")
    three = score_many(jobs)
    assert names and threading.current_thread().name not in names  # every batch ran on a worker thread
    pd.testing.assert_frame_equal(three, one)
    assert one.is_anomaly.any() and set(one.job) == set(range(len(jobs)))
    for i in (0, len(jobs) // 2, len(jobs) - 1):
        j = jobs[i]
        alone = score_series(j.series, shape=j.shape, grain=j.grain, settings=j.settings, score_from=j.score_from,
                             score_until=j.score_until, now=j.now, settle_buckets=j.settle_buckets, label=j.label)
        pd.testing.assert_frame_equal(three[three.job == i].drop(columns="job").reset_index(drop=True), alone)


def test_a_caller_s_numpy_error_state_holds_in_the_threads(monkeypatch):
    monkeypatch.setenv(parallel.THREADS_ENV, "2")
    seen = []
    calls = [(1.0, lambda: seen.append(np.geterr()["invalid"])) for _ in range(4)]
    with np.errstate(invalid="raise"):
        parallel.run_all(calls)
    assert seen == ["raise"] * 4


@pytest.mark.parametrize("fail_first", [True, False])  # the failing batch the costliest, or not
@pytest.mark.parametrize("error", [ValueError("bad batch"), KeyboardInterrupt()])
def test_an_error_in_a_batch_is_raised_and_the_other_batches_stop(monkeypatch, error, fail_first):
    monkeypatch.setenv(parallel.THREADS_ENV, "2")
    started, gate = [], threading.Event()

    def fail():
        started.append("fail")
        gate.wait(5)  # the other thread is busy too: the rest are queued
        raise error

    def busy():  # still running when `fail` raises: stops at its next chunk
        started.append("busy")
        gate.set()
        for _ in range(100):
            parallel.check_stop()
            time.sleep(0.02)
            started.append("chunk")

    def late():
        started.append("late")
        time.sleep(0.05)

    calls = [(9.0 if fail_first else 8.0, fail), (8.0 if fail_first else 9.0, busy)] + [(1.0, late)] * 20
    with pytest.raises(type(error)):
        parallel.run_all(calls)
    assert started.count("late") < 20
    assert started.count("chunk") < 50


@pytest.mark.parametrize("threads", ["1", "2"])
def test_of_two_failing_batches_the_first_in_order_is_raised_as_on_one_thread(monkeypatch, threads):
    monkeypatch.setenv(parallel.THREADS_ENV, threads)

    def slow_fail():
        time.sleep(0.1)
        raise ValueError("the costlier batch")

    def fast_fail():
        raise ValueError("the cheaper batch")

    with pytest.raises(ValueError, match="the costlier batch"):
        parallel.run_all([(1.0, fast_fail), (5.0, slow_fail)])


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5", "²", "٣"])
def test_a_thread_count_that_is_not_a_whole_number_of_at_least_one_is_refused(monkeypatch, raw):
    monkeypatch.setenv(parallel.THREADS_ENV, raw)
    with pytest.raises(ValueError, match=f"METRICS_SCORING_THREADS must be a whole number of at least 1.*{raw!r}"):
        parallel.scoring_threads()


def test_the_default_is_this_process_s_cores_at_most_eight(monkeypatch):
    monkeypatch.delenv(parallel.THREADS_ENV, raising=False)
    assert parallel.scoring_threads() == max(1, min(len(os.sched_getaffinity(0)), parallel.MAX_THREADS))
    monkeypatch.setenv(parallel.THREADS_ENV, "12")
    assert parallel.scoring_threads() == 12

"""Ending a command that a Ctrl-C did not stop.

A Ctrl-C stops `metrics run` in a few seconds: Dagster fails the step at its next check,
dbt's queries are cancelled and its thread is waited for (at most a minute each, see
defs/dbt_in_process.stop_running). Once, in a CI run, it did not: no output for 300 s
after the Ctrl-C, and nothing but `kill` would have ended it. The cause was not found
(a KeyboardInterrupt that lands where a library holds a lock it then never releases is
one way to get there). So the first Ctrl-C arms a timer: a command still running
GRACE_SECONDS later says so and exits 130 at once. Nothing is lost by that: each window
of rows is replaced in one transaction, and the next `metrics run` marks the run failed
and frees its warehouse slot (defs/run_owner.py).

The Ctrl-C is seen by the signal module's wakeup file descriptor, which the
interpreter writes from its C-level handler whatever Python handler is installed
(Dagster swaps in its own during a run): a thread reads it, so the timer starts even
when the main thread is stuck. `metrics` only (cli.main.entry), never a test process."""
from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time

GRACE_SECONDS = 120.0  # longer than an orderly stop: dbt's threads are waited for up to 60 s
STOPPING = {int(signal.SIGINT), int(signal.SIGTERM)}


def arm(message: str) -> bool:
    """Watch for the first Ctrl-C (SIGINT, or a SIGTERM); `message`, then every
    thread's stack (the cause of such a hang), is written if the command has not ended
    GRACE_SECONDS after it. False where it cannot watch (not the main thread, or no
    wakeup descriptor to be had; `metrics serve`'s event loop takes the descriptor over
    while it runs: it stops on its own)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    read, write = os.pipe()
    os.set_blocking(write, False)  # the interpreter's handler must never block on it
    try:
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(read)
        os.close(write)
        return False

    def watch() -> None:
        # the numbers of the signals received (Dagster handles a SIGTERM as a Ctrl-C)
        while not STOPPING & set(os.read(read, 64)):
            pass
        time.sleep(GRACE_SECONDS)
        try:
            # straight to the descriptor, never blocking: the stuck thread may hold
            # stderr's buffer lock, or be stuck writing to a full pipe itself
            os.set_blocking(2, False)
            os.write(2, f"error: {message}; where each thread was stuck, for a bug report:\n".encode())
            faulthandler.dump_traceback(all_threads=True)  # (C level: no lock either)
        except Exception:  # noqa: BLE001 - nothing may keep it from exiting
            pass
        finally:
            os._exit(130)

    threading.Thread(target=watch, name="metrics-interrupt-watchdog", daemon=True).start()
    return True

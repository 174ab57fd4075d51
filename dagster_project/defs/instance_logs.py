"""Dagster's local compute logs, with the helpers that echo a step's output to the
terminal deaf to the terminal's Ctrl-C.

While a step runs, Dagster points the process's stdout and stderr at the step's log
files and starts, per stream, a `tail -F` that copies the file back to the terminal and
a Python watcher that stops the tail if this process dies. A Ctrl-C reaches the whole
foreground process group, those helpers too, and each watcher printed a KeyboardInterrupt
stack trace above `metrics run`'s one line. Here they start with SIGINT ignored (a
shell's `trap '' INT`, kept across its `exec`; Python then installs no handler): a Ctrl-C
stops the run, which stops them as it does when a step ends. They stay in the terminal's
process group: in a group of their own, a terminal with `stty tostop` stopped the tail
at its first write (no output, and each step waited 30 s for it). Same files, same
layout, same reading (the UI's logs) as Dagster's `LocalComputeLogManager`;
`dagster_home.yaml` selects it under `compute_logs:` (module and class), and `base_dir`
defaults to `$DAGSTER_HOME/storage`, where Dagster keeps them."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

from dagster import Field, Float, StringSource
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.execution.scripts import watch_orphans
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._utils import ensure_file, touch_file


class InterruptSafeComputeLogManager(LocalComputeLogManager):
    def __init__(self, base_dir: str | None = None, polling_timeout: float | None = None, inst_data=None):
        base_dir = base_dir or os.path.join(os.environ.get("DAGSTER_HOME") or os.getcwd(), "storage")
        super().__init__(base_dir, polling_timeout=polling_timeout, inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False), "polling_timeout": Field(Float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key):
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored(sys.stdout, out), _mirrored(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the UI reads the capture as complete


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. pytest's captured streams
        return None


@contextmanager
def _mirrored(stream, path: str):
    """`stream` written to `path` and echoed from it to where `stream` pointed before."""
    ensure_file(path)
    fd = _fileno(stream)
    if fd is None:
        yield
        return
    helpers: list[subprocess.Popen] = []
    try:
        helpers.append(_deaf_to_ctrl_c(["tail", "-F", "-c", "+0", "--", path], stdout=fd))
        helpers.append(_deaf_to_ctrl_c([sys.executable, os.path.abspath(watch_orphans.__file__),
                                        str(os.getpid()), str(helpers[0].pid)]))
        with redirect_to_file(stream, path):
            yield
    finally:
        # as Dagster: the tail reads every second, so a step's last lines may need a wait
        time.sleep(float(os.getenv("DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH", "0")))
        for helper in helpers:
            try:
                helper.terminate()
                helper.communicate(timeout=30)
            except OSError:
                pass


def _deaf_to_ctrl_c(command: list[str], **popen) -> subprocess.Popen:
    """`command` started with SIGINT ignored: `sh` ignores it (`trap '' INT`) and execs
    the command, which keeps it ignored (no preexec_fn: unsafe with threads running)."""
    return subprocess.Popen(["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command], **popen)

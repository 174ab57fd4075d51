"""dbt in the step's own process, behind dagster-dbt's invocation.

A `dbt build` subprocess pays ~3 s before its first query on this machine: the
interpreter and dbt's imports (~2.5 s), the adapter, and reading the project back
(docs/orchestration.md, "dbt in process"). Run in process with the manifest this process
already parsed, a grain's build starts at once. dagster-dbt reads what a dbt process
prints; `InProcessDbt` stands in for that process: dbt runs on a thread and its events,
turned into the JSON lines `dbt --log-format json` prints, are what the invocation reads,
so Dagster gets the same materializations, checks, artifacts and dbt.log as from a
subprocess, streamed while dbt runs. Paths a dbt process took relative to the dbt project
folder (its working directory) are made absolute.

The manifest of this process's own parse (`remember_manifest`, from
resources.parse_manifest: `metrics run` parses once at its start) is reused only while
`target/manifest.json` is the file that parse wrote; otherwise dbt parses first (partial
parse), as a dbt process would. One dbt runs at a time per process (dbt's adapters and
event manager are global): `metrics run` runs its steps one at a time, and the UI's runs
give each step its own process."""
from __future__ import annotations

import _thread
import atexit
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

_MANIFESTS: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}
_END = object()
_RUNNING: set["InProcessDbt"] = set()  # the invocations whose dbt thread has not ended


def _manifest_stamp(project_dir: Path) -> tuple[int, int] | None:
    try:
        st = (project_dir / "target" / "manifest.json").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def remember_manifest(project_dir: Path, target: str, manifest: Any) -> None:
    """Keep a parsed manifest for later builds of this project on this target, as long
    as target/manifest.json is the file that parse wrote."""
    stamp = _manifest_stamp(project_dir)
    if manifest is not None and stamp is not None:
        _MANIFESTS.clear()  # one project's at a time: a manifest is large
        _MANIFESTS[(str(project_dir.resolve()), target)] = (stamp, manifest)


def known_manifest(project_dir: Path, target: str) -> Any | None:
    kept = _MANIFESTS.get((str(project_dir.resolve()), target))
    return kept[1] if kept and kept[0] == _manifest_stamp(project_dir) else None


class _Lines:
    """The stdout of InProcessDbt: JSON lines (bytes) until dbt ends."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False
        self._ended = False

    def put(self, line: bytes | object) -> None:
        self._queue.put(line)

    def __iter__(self):
        while not self._ended:
            try:  # a timeout, so a stop request reaches the reading thread while dbt is quiet
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is _END:
                self._ended = True
                return
            yield line

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True


class InProcessDbt:
    """What DbtCliInvocation uses of a `subprocess.Popen`: args, stdout, wait, returncode,
    send_signal. `args` is the command dagster-dbt built (its first item, the executable,
    is not run); `env` what the process would have had."""

    def __init__(self, args: list[str], env: dict[str, str], project_dir: Path, target: str) -> None:
        from ..paths import ProjectPaths
        from ..warehouse.dbt_runner import SESSION_UTC

        self.args = args
        self.returncode: int | None = None
        self.error: str | None = None  # dbt's "Encountered an error" (it stopped before a model ran)
        self.stdout = _Lines()
        self._project_dir = project_dir = Path(project_dir).resolve()
        self._target = target
        env = dict(env)
        # A dbt process ran in the dbt project folder; this one runs wherever the step
        # does: paths dbt would take relative to that folder are made absolute (its
        # artifacts and logs, the profile's default warehouse paths).
        for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
            if env.get(key) and not Path(env[key]).is_absolute():
                env[key] = str(project_dir / env[key])
        paths = ProjectPaths(project_dir.parent)
        env.setdefault("METRICS_DUCKDB_PATH", str(paths.duckdb_path))
        env.setdefault("METRICS_CHDB_PATH", str(paths.chdb_path))
        env.update(SESSION_UTC)
        # no console log (dagster-dbt prints the events it reads); the debug log file as
        # a dbt process writes it, beside the run's artifacts
        env.update(DBT_LOG_LEVEL="none", DBT_LOG_LEVEL_FILE="debug")
        # what differs from this process's environment, set for the life of the invocation
        self._env = {k: v for k, v in env.items() if os.environ.get(k) != v}
        self._thread = threading.Thread(target=self._run, name="dbt", daemon=True)
        # set when dbt has ended: not the thread's is_alive(), which a KeyboardInterrupt
        # during join() leaves False while the thread still runs (Python 3.11, bpo-45274)
        self._done = threading.Event()
        self._signalled = False
        _RUNNING.add(self)
        self._thread.start()

    def _emit(self, msg) -> None:
        from dbt_common.events.functions import env_scrubber, msg_to_dict

        name = msg.info.name
        if name == "MainEncounteredError":
            self.error = env_scrubber(str(msg.data.exc)).strip()
        # what `dbt --log-format json` prints at its default log level, secrets scrubbed;
        # but not the stack trace under "Encountered an error" (a warehouse held by another
        # process printed it three times per try): dbt.log keeps it, the step's error says it
        if msg.info.level != "debug" and name != "MainStackTrace":
            self.stdout.put(env_scrubber(orjson.dumps(msg_to_dict(msg)).decode()).encode())

    def _run(self) -> None:
        from ..warehouse.dbt_runner import ONE_DBT, _release_duckdb, environ

        code = 2
        try:
            with ONE_DBT, environ(self._env):
                try:
                    if self._target == "clickhouse":
                        from ..warehouse.chdb_driver import register
                        register()
                    code = self._invoke()
                finally:
                    _release_duckdb()  # before the reader (and the writer lock) lets go
        except BaseException as err:  # noqa: BLE001 - reported as dbt's own error line, as a crashed dbt would
            self.stdout.put(orjson.dumps({"info": {"level": "error", "msg": f"dbt: {err}", "name": "InProcessError"},
                                          "data": {}}))
        finally:
            self.returncode = code
            self.stdout.put(_END)
            _RUNNING.discard(self)
            self._done.set()

    def _invoke(self) -> int:
        from dbt.cli.main import dbtRunner

        args = list(self.args[1:])
        target_path = Path(self._env.get("DBT_TARGET_PATH") or os.environ.get("DBT_TARGET_PATH") or "target")
        manifest = known_manifest(self._project_dir, self._target)
        if manifest is None:
            manifest = self._parse(target_path)
            if manifest is None:
                return 2
        result = dbtRunner(manifest=manifest, callbacks=[self._emit]).invoke(args)
        if result.success:
            return 0
        return 1 if result.exception is None else 2

    def _parse(self, target_path: Path):
        """Parse into this invocation's target folder, from the project's partial parse
        state when there is one (what dagster-dbt does for a dbt process)."""
        from dbt.cli.main import dbtRunner

        if not target_path.is_absolute():
            target_path = self._project_dir / target_path
        kept = self._project_dir / "target" / "partial_parse.msgpack"
        if kept.exists() and not (target_path / kept.name).exists():
            target_path.mkdir(parents=True, exist_ok=True)
            shutil.copy(kept, target_path / kept.name)
        parsed = dbtRunner(callbacks=[self._emit]).invoke(
            ["parse", "--project-dir", str(self._project_dir), "--target", self._target, "--target-path", str(target_path)])
        # not remembered: only a parse in this process's own flow (resources.parse_manifest)
        # says which project files the build should follow
        return parsed.result if parsed.success else None

    def poll(self) -> int | None:
        return self.returncode

    def ended(self, timeout: float) -> bool:
        """Whether dbt has ended, waiting up to `timeout` seconds; a Ctrl-C meanwhile
        does not stop the wait early (it reads as not ended yet)."""
        try:
            return self._done.wait(timeout)
        except KeyboardInterrupt:
            return self._done.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """What SIGINT does to a dbt process: its open queries are cancelled, and dbt
        stops (a KeyboardInterrupt raised in dbt's thread, which takes effect when that
        thread next runs Python: after the node it waits for)."""
        if self._done.is_set() or self._signalled:
            return  # once: a second KeyboardInterrupt could land in the thread's own clean-up
        self._signalled = True
        from dbt.adapters.factory import FACTORY

        for adapter in list(FACTORY.adapters.values()):
            try:
                adapter.cancel_open_connections()
            except Exception:  # noqa: BLE001 - some adapters cannot cancel; dbt still stops
                pass
        ident = self._thread.ident
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))


def _unraisable(unraisable, _default=sys.unraisablehook) -> None:
    """Python reports an exception it cannot raise (in a weakref callback, a __del__, a
    generator closed by the garbage collector) and goes on. Two are handled here:
    - a Ctrl-C that landed there (Dagster's storage has SQLAlchemy weakref callbacks) was
      lost: the run went on to exit 0. It is raised again in the main thread;
    - dagster-dbt's reader of a dbt process's stdout (`DbtCliInvocation._stream_stdout`)
      wraps its `yield` in a bare `except:`, so when a Ctrl-C leaves it suspended it
      ignores the GeneratorExit of its clean-up: not printed (`stop_running` stops the
      dbt it read).
    Every other one is printed, as before."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # from another thread, a moment later: raised inside this hook, it would be lost too
        threading.Timer(0.05, _thread.interrupt_main).start()
    elif not (isinstance(unraisable.exc_value, RuntimeError) and "ignored GeneratorExit" in str(unraisable.exc_value)
              and getattr(unraisable.object, "__qualname__", "") == "DbtCliInvocation._stream_stdout"):
        _default(unraisable)


sys.unraisablehook = _unraisable


@atexit.register
def stop_running(timeout: float = 60.0) -> None:
    """Stop every dbt still running in this process and wait for it (up to `timeout`
    seconds each). Dagster can give up on an interrupted step while its dbt thread is in
    a query: exiting then stopped that thread inside the warehouse driver's native code,
    which aborted the process (SIGABRT, "FATAL: exception not rethrown") after
    `metrics run` had said it stopped; and that dbt would still be writing. A further
    Ctrl-C meanwhile does not cut the wait short (it would bring the abort back); a dbt
    that does not stop in time is given up (not waited for again at exit)."""
    for dbt in list(_RUNNING):
        started = time.monotonic()
        dbt.send_signal(signal.SIGINT)
        said = False
        while not dbt.ended(0.5):
            waited = time.monotonic() - started
            if waited >= timeout:
                _RUNNING.discard(dbt)
                break
            if waited > 2 and not said:  # a long query being cancelled: say why nothing happens
                print("      waiting for dbt to stop (its queries are being cancelled) ...", file=sys.stderr, flush=True)
                said = True

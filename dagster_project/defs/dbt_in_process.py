"""dbt in the step's own process, behind dagster-dbt's invocation.

A `dbt build` subprocess pays ~3 s before its first query on this machine: the
interpreter and dbt's imports (~2.5 s), the adapter, and reading the project back
(docs/orchestration.md, "dbt in process"). Run in process with the manifest this process
already parsed, a grain's build starts at once. dagster-dbt reads what a dbt process
prints; `InProcessDbt` stands in for that process: dbt runs on a thread and its events,
turned into the JSON lines `dbt --log-format json` prints, are what the invocation reads,
so Dagster gets the same materializations, checks and run_results.json as from a
subprocess, streamed while dbt runs.

The manifest is reused only while `target/manifest.json` is the one it was parsed with
(`remember_manifest`, called after every parse); otherwise dbt parses first (partial parse).
One dbt runs at a time per process (dbt's adapters and event manager are global): the
steps that build run one at a time in a run, and a run's steps each get a process."""
from __future__ import annotations

import ctypes
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import orjson

_MANIFESTS: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}
_END = object()


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

    def put(self, line: bytes | object) -> None:
        self._queue.put(line)

    def __iter__(self):
        while True:
            try:  # a timeout, so a stop request reaches the reading thread while dbt is quiet
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is _END:
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
        self.args = args
        self.returncode: int | None = None
        self.stdout = _Lines()
        self._project_dir = project_dir
        self._target = target
        # only what dagster-dbt added or changed (dbt reads its flags from the environment);
        # no console log: dagster-dbt prints the events it reads
        self._env = {k: v for k, v in env.items() if os.environ.get(k) != v} | {"DBT_LOG_LEVEL": "none"}
        self._thread = threading.Thread(target=self._run, name="dbt", daemon=True)
        self._thread.start()

    def _emit(self, msg) -> None:
        from dbt_common.events.functions import msg_to_dict

        # what `dbt --log-format json` prints at its default log level
        if msg.info.level != "debug":
            self.stdout.put(orjson.dumps(msg_to_dict(msg)))

    def _run(self) -> None:
        from ..warehouse.dbt_runner import ONE_DBT, _release_duckdb, environ

        code = 2
        try:
            with ONE_DBT:
                try:
                    with environ(self._env):
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
        if not parsed.success:
            return None
        remember_manifest(self._project_dir, self._target, parsed.result)
        return parsed.result

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._thread.join(timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """What SIGINT does to a dbt process: dbt stops, cancels its open queries and
        writes run_results.json (a KeyboardInterrupt raised in dbt's thread)."""
        ident = self._thread.ident
        if ident is not None and self._thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))

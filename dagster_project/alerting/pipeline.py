"""Pipeline alerts, so a broken pipeline is never read as a quiet metric:

- freshness: a dbt source table whose newest row is older than its declared allowance
  (dbt's own `config: {freshness: {warn_after, error_after}, loaded_at_field}` in
  `models/**/_sources.yml`, so `dbt source freshness` reads the same declaration), or
  that does not exist. Checked on every alert evaluation: one `max()` per source table.
- run_failure: a failed Dagster run of a job (the run-failure sensor), resolved by the
  job's next successful run (the run-success sensor)."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..paths import ProjectPaths
from ..warehouse.connection import Warehouse, WarehouseError, _yaml
from ..validation.catalog import sources_of
from ..validation.freshness import table_freshness
from .engine import Signal

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FreshnessRule:
    schema: str
    table: str
    loaded_at_field: str
    warn_after: dt.timedelta | None
    error_after: dt.timedelta | None
    file: str
    source_name: str = ""  # the dbt source's name: with the table, its Dagster asset key

    @property
    def source(self) -> str:
        return f"{self.schema}.{self.table}"


def freshness_rules(paths: ProjectPaths) -> tuple[list[FreshnessRule], list[str]]:
    """The declared allowances, and the declarations that cannot be checked (why)."""
    rules, problems = [], []
    for file in sorted(paths.models_dir.rglob("*.yml")):
        if paths.generated_dir in file.parents:
            continue
        for _, source, tables in sources_of(_yaml(file)):
            schema = str(source.get("schema") or source.get("name") or "")
            for _, table in tables:
                fresh = table_freshness(source, table)
                if fresh is None:
                    continue
                name = str(table.get("identifier") or table.get("name") or "")
                warn, error, field = fresh.warn_after, fresh.error_after, fresh.loaded_at_field
                where = f"{Path(paths.relative(file))}: source {schema}.{name}"
                # a threshold that cannot be read is not checked, and said (the other one is)
                problems.extend(f"{where}: freshness {key} not checked: {why}" for key, why in fresh.problems)
                if not (warn or error):
                    continue
                if not all(_IDENT.match(x) for x in (schema, name, field)):
                    problems.append(f"{where}: freshness needs a plain column as loaded_at_field (got `{field}`)")
                    continue
                rules.append(FreshnessRule(schema, name, field, warn, error, paths.relative(file),
                                           str(source.get("name") or schema)))
    return rules, problems


def _newest(wh: Warehouse, rule: FreshnessRule) -> tuple[bool, dt.datetime | None]:
    """(table exists, newest loaded_at as naive UTC)."""
    if wh.target == "clickhouse":
        exists_sql = "select count() from system.tables where database = ? and name = ?"
    else:
        exists_sql = "select count(*) from information_schema.tables where table_schema = ? and table_name = ?"
    if int(wh.rows(exists_sql, [rule.schema, rule.table])[1][0][0]) == 0:
        return False, None
    value = wh.rows(f'select max("{rule.loaded_at_field}") from "{rule.schema}"."{rule.table}"')[1][0][0]
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return True, value


def freshness_signals(wh: Warehouse, paths: ProjectPaths, now: dt.datetime,
                      only: list[FreshnessRule] | None = None) -> tuple[list[Signal], list[str]]:
    rules, notes = freshness_rules(paths)
    signals = []
    for rule in (rules if only is None else only):
        allowance = rule.error_after or rule.warn_after
        detail = {"source": rule.source, "allowance": allowance.total_seconds(), "last_row_at": None}
        try:
            exists, newest = _newest(wh, rule)
        except WarehouseError as err:
            notes.append(f"freshness of {rule.source} not checked: {err}")
            continue
        if not exists:
            signals.append(Signal("freshness", rule.source, True, "critical",
                                  f"{rule.source} does not exist: no rows are arriving", None, detail))
            continue
        detail["last_row_at"] = newest.strftime("%Y-%m-%dT%H:%M:%SZ") if newest else None
        age = now - newest if newest else None
        late_error = rule.error_after is not None and (age is None or age > rule.error_after)
        late_warn = rule.warn_after is not None and (age is None or age > rule.warn_after)
        if late_error or late_warn:
            limit = rule.error_after if late_error else rule.warn_after
            detail["allowance"] = limit.total_seconds()  # the allowance passed: a warning's, not the error's
            if newest is None:
                reason = f"{rule.source} has no rows"
            else:
                hours = age.total_seconds() / 3600
                reason = (f"no new rows in {rule.source} for {hours:,.1f} h (allowed {limit.total_seconds() / 3600:g} h; "
                          f"newest {newest:%Y-%m-%d %H:%M} UTC)")
            signals.append(Signal("freshness", rule.source, True, "critical" if late_error else "warning", reason,
                                  (newest + limit) if newest else None, detail))
        else:
            signals.append(Signal("freshness", rule.source, False, reason=f"{rule.source} delivers rows again"))
    return signals, notes


# Credentials in a run's error line (it goes to alert channels, `alert_state` and the read
# API). A name ending in a credential word, then `=` or `:` and its value (a quoted one
# whole): `access_token=`, `PGPASSWORD=`, `AWS_SECRET_ACCESS_KEY=`, `password: 'a b'`,
# `X-Api-Key:`. Ordinary words stay: `partition_key=`, `run_key=`, `max_tokens=5`, and after
# a colon a bare `key`, `token` or `credentials` ("unexpected token: SELECT"). Each pattern
# starts only where a name starts (no `[\w.-]` before it) and takes the name whole: a
# long dotted line ("a." * 20,000) took minutes with a pattern retried inside the name.
_WORDS = (r"password|passwd|pwd|secret|(?:access|refresh|auth|id|session|api|bearer|csrf)[_-]?token"
          r"|api[_-]?key|apikey|(?:access|secret|private|client|signing|master)[_-]?key|secret[_-]?access[_-]?key"
          r"|client[_-]?secret")
_ASSIGNED = re.compile(rf"(?:{_WORDS}|token|credentials?)$|^(?:key|sig)$", re.IGNORECASE)  # before `=`
_LABELLED = re.compile(rf"(?:^|[_.-])(?:{_WORDS})$", re.IGNORECASE)  # before `:`
_NAMED = re.compile(r"""(?<![\w.-])([\w.-]++)(["']?)(\s*(=|:(?!//))\s*)""")
_VALUE = re.compile(r"""("[^"]*"|'[^']*'|[^\s"'&,;)}]+)""")
_OTHER = re.compile(r"(://)(?:[^/\s@]*+@)++"  # a URL's user and password, up to its last `@`
                    r"|((?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer|basic|token|digest)?\s*)[^\s,;)]+"
                    r"|(\bbearer\s+)(?=[A-Za-z0-9._~+/=-]*[0-9_])[A-Za-z0-9._~+/=-]{12,}", re.IGNORECASE)
# tokens whose form says what they are, wherever they stand (`token: ghp_...`), and the
# secret path of a Slack incoming-webhook URL
_KNOWN_TOKENS = re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{20,}|\bxox[abpors]-[A-Za-z0-9-]{10,}"
                           r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|\bsk-(?:proj-)?(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{20,}"
                           r"|\bglpat-[A-Za-z0-9_-]{20,}|\bA[KS]IA[0-9A-Z]{16}\b"
                           r"|(?<=hooks\.slack\.com/services/)[^\s\"'<>]+")


def _credential(m: re.Match) -> bool:
    name, closing, sign = m.group(1), m.group(2), m.group(4)
    if sign == "=":
        return bool(_ASSIGNED.search(name))
    # JSON's `"token": "..."`: a quoted bare token or key is one
    quoted = closing and m.start() > 0 and m.string[m.start() - 1] == closing
    return bool(_LABELLED.search(name)) or bool(quoted and name.lower() in ("token", "key"))


def _masked(text: str) -> str:
    """An error line without URL credentials, credential-named values, known token forms
    or an Authorization header's credential."""
    text = _KNOWN_TOKENS.sub("***", text)
    text = _OTHER.sub(lambda m: (m.group(1) + "***@") if m.group(1) else ((m.group(2) or m.group(3)) + "***"), text)
    out, pos = [], 0
    for m in _NAMED.finditer(text):  # (a name is not consumed with a value: `a:b@x?token=...`)
        if m.start() < pos or not _credential(m):
            continue
        value = _VALUE.match(text, m.end())
        if value is None:
            continue
        quote = value.group(1)[0] if value.group(1)[0] in "'\"" else ""
        out.append(f"{text[pos:m.end()]}{quote}***{quote}")
        pos = value.end()
    return "".join(out) + text[pos:]


def run_failure_signal(job: str, run_id: str, partition: str | None, error: str | None, failed: bool,
                       at: dt.datetime) -> Signal:
    if not failed:
        return Signal("run_failure", job, False, reason=f"run {run_id} of {job} succeeded")
    first = [_masked(line[:2000])[:300] for line in (error or "").strip().splitlines()[:1]]
    return Signal("run_failure", job, True, "critical",
                  f"run {run_id[:8]} of {job} failed" + (f": {first[0][:200]}" if first else ""), at,
                  {"job": job, "run_id": run_id, "partition": partition, "error": first[0] if first else None},
                  {"grain": _grain_of(job)})


def _grain_of(job: str) -> str | None:
    m = re.match(r"^rollups_(hour|day|week|month)_job$", job)
    return m.group(1) if m else None


# Run signals that could not be evaluated when their run ended (the warehouse was busy or
# unreachable, alerts.yml invalid): Dagster's run-status cursor has moved past the run,
# so they wait in a small file next to the warehouse until an evaluation takes them.
def queue_path(paths: ProjectPaths) -> Path:
    return paths.warehouse_dir / ".alert_signals.jsonl"


@contextmanager
def _queue_lock(paths: ProjectPaths):
    import fcntl
    path = queue_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def enqueue(paths: ProjectPaths, signals: list[Signal]) -> None:
    if not signals:
        return
    with _queue_lock(paths) as path, open(path, "a", encoding="utf-8") as out:
        for s in signals:
            out.write(json.dumps({**asdict(s), "since": s.since.isoformat() if s.since else None}, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())


def queued(paths: ProjectPaths) -> list[Signal]:
    with _queue_lock(paths) as path:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            d["since"] = dt.datetime.fromisoformat(d["since"]) if d.get("since") else None
            out.append(Signal(**d))
        except (ValueError, TypeError):
            continue  # a torn line from a crash: skipped, never a crash of every evaluation
    return out


def dequeue(paths: ProjectPaths, count: int) -> None:
    """Drop the first `count` queued signals (the ones an evaluation has committed)."""
    if count <= 0:
        return
    with _queue_lock(paths) as path:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        rest = lines[count:]
        path.write_text("".join(line + "\n" for line in rest), encoding="utf-8")

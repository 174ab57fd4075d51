"""`metrics silence add|list`: silences live in alerts.yml (a reviewed file stays the
source of truth), so `add` edits its text: the new entry goes at the end of the
`silences:` list and every other line, comments included, stays as it was."""
from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import getpass
import json
import os
import sys

import yaml

from ..alerting.names import ALERTS_FILE, MATCH_KEYS
from ..printable import one_line
from ..spec.yaml_lines import YamlSyntaxError, read_utf8
from ..validation.issues import closest

_NEW_FILE = ("# Alert channels, routes and silences: see README.md, \"Alerts configuration\".\n"
             "# Written by `metrics silence add`; edit freely.\n")


class UserError(Exception):
    """A mistake in the command line: exit 2, nothing written."""


def add_parser(sub, with_target, date_type) -> None:
    sp = sub.add_parser("silence", help=f"add or list alert silences ({ALERTS_FILE})")
    ssub = sp.add_subparsers(dest="silence_command", required=True)
    add = ssub.add_parser("add", help=f"append a silence to {ALERTS_FILE} (other lines and comments stay)")
    add.add_argument("--match", action="append", required=True, metavar="KEY=VALUE",
                     help=f"what to silence; keys: {', '.join(MATCH_KEYS)}; `*` globs; repeat a key for any of several values")
    add.add_argument("--until", required=True, metavar="TIMESTAMP", help="end (UTC): 2026-12-27T00:00Z or 2026-12-27")
    add.add_argument("--from", dest="from_", metavar="TIMESTAMP", help="start (UTC; default: now)")
    add.add_argument("--comment", required=True, help="why (shown next to every silenced alert)")
    add.add_argument("--created-by", help="who (default: the current user)")
    add.set_defaults(func=cmd_silence_add)
    ls = ssub.add_parser("list", help="print active and future silences")
    ls.add_argument("--all", action="store_true", help="also silences that are over")
    ls.set_defaults(func=cmd_silence_list)


def parse_timestamp(text: str) -> dt.datetime:
    """Naive UTC from `2026-12-27T00:00Z`, `2026-12-27T00:00:00Z`, `2026-12-27` (an offset
    is converted, no offset means UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"`{text}` is not a timestamp (write 2026-12-27T00:00Z, 2026-12-27T00:00:00Z or 2026-12-27; UTC)") from None
    from ..alerting.config import utc_naive
    try:
        value = utc_naive(value)
    except OverflowError:
        raise UserError(f"`{text}` in UTC falls outside the years 1 to 9999") from None
    return value.replace(microsecond=0)  # alerts.yml holds whole seconds


def parse_match(items: list[str]) -> dict[str, str | list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UserError(f"--match takes KEY=VALUE, got `{item}`")
        if key not in MATCH_KEYS:
            raise UserError(f"--match: unknown key `{key}`{closest(key, MATCH_KEYS)}; keys: {', '.join(MATCH_KEYS)}")
        out.setdefault(key, []).append(value)
    match = {k: v[0] if len(v) == 1 else v for k, v in out.items()}
    from ..alerting.config import Match
    never = Match.model_validate(match).never_matching()  # a grain, severity or kind none fits
    if never:
        raise UserError(f"--match {never[0]}: {never[1]}")
    return match


def _stamp(value: dt.datetime) -> str:
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%SZ}"  # (strftime's %Y gives year 1 as `1`)


def render_entry(match: dict, starts: dt.datetime, ends: dt.datetime, comment: str, created_by: str | None) -> list[tuple[str, str]]:
    """(key, YAML value) pairs of one silence; strings JSON-quoted (valid YAML, never a
    surprise type such as `no` or `1e3`)."""
    q = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    shown = ", ".join(f"{k}: {q(v)}" for k, v in match.items())
    pairs = [("match", f"{{{shown}}}"), ("starts", _stamp(starts)), ("ends", _stamp(ends)), ("comment", q(comment))]
    return pairs + ([("created_by", q(created_by))] if created_by else [])


def insert_silence(text: str, pairs: list[tuple[str, str]]) -> str:
    """`text` with the silence appended to its top-level `silences:` (block list: after
    the last item; `[]` or empty: turned into a block list; no key: a new section)."""
    def block(indent: int) -> str:
        pad = " " * indent
        return "\n".join(f"{pad}{'- ' if i == 0 else '  '}{k}: {v}" for i, (k, v) in enumerate(pairs))

    root = yaml.compose(text) if text.strip() else None
    node = next((v for k, v in (root.value if isinstance(root, yaml.MappingNode) else [])
                 if isinstance(k, yaml.ScalarNode) and k.value == "silences"), None)
    if node is None:
        sep = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
        return f"{text}{sep}silences:\n{block(2)}\n"
    lines = text.splitlines(keepends=True)
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        last = node.end_mark.line - (1 if node.end_mark.column == 0 else 0)
        last = min(last, len(lines) - 1)
        # trailing blank lines and column-0 comments belong to what follows the list
        while last > node.start_mark.line and (not lines[last].strip() or lines[last].startswith("#")):
            last -= 1
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, block(node.start_mark.column) + "\n")
        return "".join(lines)
    if isinstance(node, yaml.SequenceNode) and node.value:  # a non-empty flow list: one more flow item
        flow = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        at = node.end_mark.index - 1
        return text[:at].rstrip() + f", {flow}" + text[at:]
    if node.start_mark.line != node.end_mark.line:
        raise UserError(f"{ALERTS_FILE}: `silences:` has an unusual layout; add the silence by hand")
    # `silences:`, `silences: ~` or `silences: []`: drop the value, keep a comment after it
    i = node.start_mark.line
    line = lines[i].rstrip("\n")
    rest = line[node.end_mark.column:].strip()
    lines[i] = line[:node.start_mark.column].rstrip() + (f"  {rest}" if rest else "") + "\n"
    lines.insert(i + 1, block(2) + "\n")
    return "".join(lines)


def cmd_silence_add(args, paths) -> int:
    try:
        return _add(args, paths)
    except UserError as err:
        print(f"error: {err}; nothing written", file=sys.stderr)
        return 2


def _add(args, paths) -> int:
    from ..alerting.load import alerts_path
    match = parse_match(args.match)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    starts = parse_timestamp(args.from_) if args.from_ else now
    ends = parse_timestamp(args.until)
    if ends <= now:
        raise UserError(f"--until {_stamp(ends)} is in the past: the silence would never apply")
    if ends <= starts:
        raise UserError(f"--until {_stamp(ends)} must be after the start {_stamp(starts)}")
    created_by = args.created_by or _user()
    path = alerts_path(paths)
    with _edit_lock(path):  # two `silence add` at once: each reads the other's entry
        return _add_locked(args, paths, path, match, starts, ends, created_by)


@contextlib.contextmanager
def _edit_lock(path):
    """An OS lock on `.alerts.yml.lock` next to the file for one read-modify-replace."""
    import fcntl
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _add_locked(args, paths, path, match, starts, ends, created_by) -> int:
    from ..alerting.config import Silence
    from ..alerting.load import load_alerts
    try:
        old_text = read_utf8(path) if path.exists() else ""
    except YamlSyntaxError as err:
        raise UserError(f"{ALERTS_FILE}:{err.line}: {err.message}") from None
    before, issues = load_alerts(paths, old_text) if old_text else (None, [])
    if issues:
        for issue in issues:
            print(issue, file=sys.stderr)
        print(f"error: {ALERTS_FILE} has {len(issues)} problem(s): fix them first; nothing written", file=sys.stderr)
        return 2  # a mistake in the file, like every other refusal here (README)
    pairs = render_entry(match, starts, ends, args.comment, created_by)
    new_text = insert_silence(old_text or _NEW_FILE, pairs)
    after, issues = load_alerts(paths, new_text)
    expected = Silence.model_validate({"match": match, "starts": starts, "ends": ends, "comment": args.comment,
                                       "created_by": created_by})
    count = len(before.silences) if before else 0
    if issues or len(after.silences) != count + 1 or after.silences[-1] != expected:
        for issue in issues:
            print(f"{issue} (in the edited text)", file=sys.stderr)
        raise UserError(f"could not add the silence to {ALERTS_FILE} automatically; add it by hand:\n"
                        + "\n".join(f"  {'- ' if i == 0 else '  '}{k}: {v}" for i, (k, v) in enumerate(pairs)))
    _warn_unmatched(paths, match)
    # a symlinked alerts.yml (shared between projects) is edited where it lives, with its mode
    target = path.resolve() if path.is_symlink() else path
    if not target.parent.is_dir():
        raise UserError(f"{ALERTS_FILE} is a link to {target}, whose folder does not exist: nothing written")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    if target.exists():
        os.chmod(tmp, target.stat().st_mode & 0o7777)
    tmp.replace(target)  # atomic: a reader never sees half a file
    print(f"{'added to' if old_text else 'created'} {paths.relative(path)}:")
    print("\n".join(f"  {'- ' if i == 0 else '  '}{k}: {v}" for i, (k, v) in enumerate(pairs)))
    return 0


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): leave it out
        return None


def _warn_unmatched(paths, match: dict) -> None:
    """A silence on a misspelt metric, domain, owner or tag silences nothing: say so (a
    warning: the value may be a metric still to come)."""
    from ..validation.project import load_project, metric_files
    wanted = {k: match[k] for k in ("metric", "domain", "owner", "tag") if k in match}
    if not wanted:
        return
    known = {"metric": [p.stem for p in metric_files(paths)]}
    if set(wanted) - {"metric"}:
        project = load_project(paths).project  # None with problems: only the names are checked
        if project is None:
            unchecked = ", ".join(k for k in wanted if k != "metric")
            print(f"note: the project does not validate (metrics validate): {unchecked} not checked against its metrics",
                  file=sys.stderr)
        else:
            metrics = list(project.metrics.values())
            known |= {"domain": sorted({m.domain for m in metrics}), "owner": sorted({m.owner for m in metrics if m.owner}),
                      "tag": sorted({t for m in metrics for t in m.tags})}
    for key, value in wanted.items():
        if key not in known:
            continue
        for pattern in value if isinstance(value, list) else [value]:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in known[key]):
                print(f"warning: {key} `{pattern}` matches no {key} of this project{closest(pattern, known[key])}",
                      file=sys.stderr)


def cmd_silence_list(args, paths) -> int:
    from ..alerting.load import load_alerts
    config, issues = load_alerts(paths)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        return 1
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = []
    for s in config.silences:
        state = "active" if s.active(now) else "future" if s.starts > now else "over"
        if state != "over" or args.all:
            shown = " ".join(f"{k}={'|'.join(v) if isinstance(v, list) else v}"
                             for k, v in s.match.model_dump(exclude_none=True).items())
            # a line break in a comment would split the row: shown as \n, as every listing does
            rows.append((state, _stamp(s.starts), _stamp(s.ends), one_line(shown), one_line(s.comment or ""),
                         one_line(s.created_by or "")))
    if not rows:
        print(f"no {'' if args.all else 'active or future '}silences in {ALERTS_FILE}")
        return 0
    head = ("status", "starts", "ends", "match", "comment", "created_by")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0

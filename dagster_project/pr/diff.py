"""Compare the metrics of a git ref with the working tree: which metrics are added,
removed or changed, whether each change moves values (breaking) or not, the generated
SQL that changes, and the backfill plan. Reads YAML and renders SQL only: no warehouse,
no dbt, no dagster."""
from __future__ import annotations

import dataclasses
import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlglot import exp

from ..compiler.plan import build_plan
from ..compiler.writer import macros_digest, render_files
from ..paths import ProjectPaths
from ..warehouse.read import now_utc
from ..spec.resolved import Metric, MetricsProject
from ..validation.project import load_project, metric_files
from .gitref import BaseRef, export_project, resolve
from .plan import BackfillPlan, build_backfill_plan
from .upstream import upstream_notes

# impact of a metric's change, and whether it needs a backfill (when the metric is active)
IMPACTS = {
    "new": "a new metric: built from its start",
    "breaking": "values change: rebuilt from its start",
    "non-breaking": "no value changes",
    "activated": "draft -> active: built into the active rollups from its start",
    "reactivated": "archived -> active: rebuilt from its start",
    "deactivated": "active -> draft: leaves the active series; built only with --include-drafts",
    "archived": "not built any more; its history stays readable",
    "removed": "its rows stay in the rollup tables (`metrics prune` lists them)",
}
BACKFILLED = {"new", "breaking", "activated", "reactivated"}


class DiffError(RuntimeError):
    """The working tree does not validate, or git failed: nothing to compare."""


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any
    breaking: bool
    note: str = ""

    def as_dict(self) -> dict:
        return {"field": self.field, "old": _plain(self.old), "new": _plain(self.new), "breaking": self.breaking,
                **({"note": self.note} if self.note else {})}


@dataclass
class MetricDiff:
    name: str
    change: str  # added | removed | changed
    impact: str  # a key of IMPACTS
    kind: str
    status: str  # in the working tree (removed: at the base)
    path: str
    fields: list[FieldChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it is breaking when no own field is
    models: list[str] = field(default_factory=list)  # generated files it is computed in (both sides)
    sql_changed: list[str] = field(default_factory=list)  # of those, the ones whose SQL differs
    start: str | None = None
    grains: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        """Built (new, breaking, activated or reactivated): what the plan rebuilds when active."""
        return self.impact in BACKFILLED

    @property
    def values_change(self) -> bool:
        """Its built values change (a new or newly active metric has none yet): the
        headline's count, and `breaking` in the JSON."""
        return self.impact == "breaking"

    @property
    def backfill(self) -> bool:
        return self.impact in BACKFILLED and self.status == "active"

    def as_dict(self) -> dict:
        return {"name": self.name, "change": self.change, "impact": self.impact, "breaking": self.values_change,
                "backfill": self.backfill, "kind": self.kind, "status": self.status, "path": self.path,
                "start": self.start, "grains": self.grains, "fields": [f.as_dict() for f in self.fields],
                "reasons": self.reasons, "models": self.models, "sql_changed": self.sql_changed}


@dataclass
class ProjectDiff:
    base: BaseRef
    metrics: list[MetricDiff]
    unchanged: int
    sql_diff: dict[str, str]  # models/metrics/<file> -> unified diff
    plan: BackfillPlan
    notes: list[str] = field(default_factory=list)
    base_issues: list[str] = field(default_factory=list)  # the base did not validate

    def count(self, change: str) -> int:
        return sum(1 for m in self.metrics if m.change == change)

    def as_dict(self) -> dict:
        return {"base": {"ref": self.base.ref, "commit": self.base.commit, "subject": self.base.subject},
                "summary": {"added": self.count("added"), "removed": self.count("removed"),
                            "changed": self.count("changed"), "unchanged": self.unchanged,
                            "breaking": sum(1 for m in self.metrics if m.values_change), "notes": len(self.notes)},
                "metrics": [m.as_dict() for m in self.metrics], "backfill_plan": self.plan.as_dict(),
                "sql_diff": self.sql_diff, "notes": self.notes, "base_issues": self.base_issues}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


# ---------------------------------------------------------------------------- comparing

def _sql(fragment):
    """A fragment as a canonical parsed tree: reformatting (`a+b` vs `a + b`), redundant
    parentheses (the tree holds the precedence), `'x' = col` for `col = 'x'` and a
    one-value `in` are not changes of values. Trees compare by structure."""
    if fragment is None:
        return None

    def plain(node):
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.In) and len(node.expressions) == 1 and not node.args.get("query"):
            node = exp.EQ(this=node.this, expression=node.expressions[0])
        return node

    def ordered(node):  # = and <> read the same either way round
        if isinstance(node, (exp.EQ, exp.NEQ)):
            a, b = sorted((node.this, node.expression), key=lambda x: x.sql())
            return type(node)(this=a, expression=b)
        return node

    return plain(fragment.tree.copy()).transform(plain).transform(ordered)


def _text(fragment) -> str | None:
    return None if fragment is None else fragment.text


def _fragment_change(out: list[FieldChange], name: str, old, new) -> None:
    if _sql(old) != _sql(new):
        out.append(FieldChange(name, _text(old), _text(new), True))
    elif _text(old) != _text(new):
        out.append(FieldChange(name, _text(old), _text(new), False, "same SQL once parsed"))


def _measure_changes(prefix: str, old: Metric, new: Metric) -> list[FieldChange]:
    out: list[FieldChange] = []
    a, b = old.measure, new.measure
    for attr in ("source", "timestamp", "aggregation", "percentile"):
        if getattr(a, attr) != getattr(b, attr):
            out.append(FieldChange(prefix + attr, getattr(a, attr), getattr(b, attr), True))
    _fragment_change(out, prefix + "expression", a.expression, b.expression)
    _fragment_change(out, prefix + "filter", a.filter, b.filter)
    return out


def _side(metric: Metric, side: str) -> str:
    name = getattr(metric, side)
    return "(inline)" if name == f"{metric.name}__{side}" else name


def compare(old: Metric, new: Metric, base: MetricsProject, head: MetricsProject) -> list[FieldChange]:
    """Every field that differs between two resolved definitions of one metric."""
    out: list[FieldChange] = []
    if old.kind != new.kind:
        out.append(FieldChange("kind", old.kind, new.kind, True))
    elif new.kind == "simple":
        out += _measure_changes("", old, new)
    elif new.kind == "ratio":
        for side in ("numerator", "denominator"):
            a, b = _side(old, side), _side(new, side)
            if a != b:
                out.append(FieldChange(side, a, b, True))
            elif a == "(inline)":
                out += _measure_changes(f"{side}.", base.metrics[getattr(old, side)], head.metrics[getattr(new, side)])
    else:
        _fragment_change(out, "expression", old.formula, new.formula)
    if old.dimensions != new.dimensions:
        out.append(FieldChange("dimensions", old.dimensions, new.dimensions, True))
    if old.grains != new.grains:
        added = [g for g in new.grains if g not in old.grains]
        removed = [g for g in old.grains if g not in new.grains]
        note = "; ".join(x for x in (f"added {', '.join(added)}" if added else "",
                                     f"removed {', '.join(removed)} (its rows stay)" if removed else "") if x)
        out.append(FieldChange("grains", old.grains, new.grains, bool(added), note))
    if new.start < old.start:
        out.append(FieldChange("start", old.start, new.start, True, "earlier: more history to build"))
    elif new.start > old.start:
        out.append(FieldChange("start", old.start, new.start, False, "later: buckets before it are no longer shown"))
    for attr in ("description", "owner", "alerts", "tags", "domain", "path"):
        if getattr(old, attr) != getattr(new, attr):
            out.append(FieldChange(attr, getattr(old, attr), getattr(new, attr), False))
    a, b = old.anomaly.model_dump(mode="json"), new.anomaly.model_dump(mode="json")
    for key in a:
        if key == "enabled" and old.status != new.status and not _sets_enabled(base, head, new.name):
            continue  # follows the status (on for active metrics): not a change of its own
        if a[key] != b[key]:
            # an unset sensitivity or training window is the grain's default, not "None"
            was, now = ("grain default" if v is None else v for v in (a[key], b[key]))
            out.append(FieldChange(f"anomaly.{key}", was, now, False, "detection only: scores, not values"))
    if old.status != new.status:
        out.append(FieldChange("status", old.status, new.status, new.status == "active"))
    return out


def _sets_enabled(base: MetricsProject, head: MetricsProject, name: str) -> bool:
    specs = [p.specs.get(name) for p in (base, head)]
    return any(s is not None and s.anomaly is not None and "enabled" in s.anomaly.model_fields_set for s in specs)


def _impact(old: Metric, new: Metric, breaking: bool) -> str | None:
    if old.status == new.status:
        return "breaking" if breaking else "non-breaking"
    if new.status == "archived":
        return "archived"
    if new.status == "active":
        return "activated" if old.status == "draft" else "reactivated"
    if old.status == "active":
        return "deactivated"
    return "breaking" if breaking else "non-breaking"  # archived -> draft


def _models(project: MetricsProject, name: str) -> set[str]:
    """The generated files a metric is computed in: the rollups of the metrics it reads,
    the series views that show it."""
    from .plan import leaves
    if name not in project.metrics or not project.metrics[name].is_built:
        return set()
    plan = build_plan(project)
    wanted = leaves(project, name)
    out = {f"rollups/{r.name}.sql" for r in plan.rollups if any(m.name in wanted for m in r.metrics)}
    out |= {f"series/{s.name}.sql" for s in plan.series if any(m.name == name for m in s.outputs)}
    return out


def _own_change(base: MetricsProject, head: MetricsProject, name: str, base_paths: ProjectPaths,
                before: dict[str, str]) -> set[str] | None:
    """The generated files that change when only this metric's change is applied to the
    base: a rollup or series view shared by several metrics changes for each of them,
    and this tells whose change a file carries. None when the mix cannot be compiled (a
    ratio naming a metric the base does not have): then every touched file counts."""
    metrics = {k: v for k, v in base.metrics.items() if not (k == name or k.startswith(name + "__"))}
    metrics.update({k: v for k, v in head.metrics.items() if k == name or k.startswith(name + "__")})
    mixed = dataclasses.replace(base, metrics=dict(sorted(metrics.items())),
                                categorical={**base.categorical, **head.categorical})
    try:
        after = render_files(mixed, base_paths.root / "macros")
    except Exception:  # noqa: BLE001 - any failure just means "cannot attribute"
        return None
    return {f for f in set(before) | set(after) if before.get(f) != after.get(f)}


def _unified(rel: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                 fromfile=f"a/models/metrics/{rel}" if old is not None else "/dev/null",
                                 tofile=f"b/models/metrics/{rel}" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# ---------------------------------------------------------------------------- the diff

def diff_projects(base_paths: ProjectPaths, base_project: MetricsProject, head_paths: ProjectPaths,
                  head_project: MetricsProject, base: BaseRef, now=None) -> ProjectDiff:
    now = now or now_utc()
    old_public = {m.name: m for m in base_project.public()}
    new_public = {m.name: m for m in head_project.public()}
    diffs: dict[str, MetricDiff] = {}
    own: dict[str, list[FieldChange]] = {}
    for name in sorted(set(old_public) | set(new_public)):
        old, new = old_public.get(name), new_public.get(name)
        if old is None:
            impact = "new" if new.status != "archived" else "archived"
            diffs[name] = MetricDiff(name, "added", impact, new.kind, new.status, new.path)
        elif new is None:
            diffs[name] = MetricDiff(name, "removed", "removed", old.kind, old.status, old.path)
        else:
            own[name] = compare(old, new, base_project, head_project)

    # a ratio or derived metric whose input changes values changes values too
    breaking_memo: dict[str, list[str]] = {}

    def why(name: str) -> list[str]:
        """Inputs (transitively) whose values change; [] when none do."""
        if name in breaking_memo:
            return breaking_memo[name]
        breaking_memo[name] = []
        out = []
        for i in head_project.metrics[name].inputs:
            if not head_project.metrics[i].public:
                continue  # an inline side: compared with the ratio itself
            if i in own and (any(f.breaking and f.field != "status" for f in own[i]) or why(i)):
                out.append(f"input `{i}` changes values")
            elif i in diffs and diffs[i].change == "added":
                pass  # a new input is named by a changed numerator/denominator/expression
        breaking_memo[name] = out
        return out

    for name, fields in own.items():
        old, new = old_public[name], new_public[name]
        reasons = why(name)
        breaking = any(f.breaking and f.field != "status" for f in fields) or bool(reasons)
        if not fields and not reasons:
            continue
        diffs[name] = MetricDiff(name, "changed", _impact(old, new, breaking), new.kind, new.status, new.path,
                                 fields, reasons)

    base_files = render_files(base_project, base_paths.root / "macros")
    head_files = render_files(head_project, head_paths.root / "macros")
    sql_diff: dict[str, str] = {}
    for d in diffs.values():
        touched = _models(base_project, d.name) | _models(head_project, d.name)
        d.models = sorted(touched)
        changed = [f for f in sorted(touched) if base_files.get(f) != head_files.get(f)]
        for f in changed:
            sql_diff.setdefault(f, _unified(f, base_files.get(f), head_files.get(f)))
        own_files = _own_change(base_project, head_project, d.name, base_paths, base_files)
        d.sql_changed = [f for f in changed if own_files is None or f in own_files]
        m = head_project.metrics.get(d.name) or base_project.metrics[d.name]
        d.start, d.grains = m.start.isoformat(), list(m.grains)

    notes = []
    if macros_digest(base_paths.root / "macros") != macros_digest(head_paths.root / "macros"):
        notes.append("macros/ changed: every rollup model's code version changes, so Dagster shows their partitions "
                     "as stale; values change only where the macro change alters the SQL")
    notes += upstream_notes(base_paths, head_paths, head_project)
    for attr in ("settle_lookback", "demo"):
        a, b = getattr(base_project.config, attr), getattr(head_project.config, attr)
        if a != b:
            notes.append(f"_config.yml `{attr}` changed: {_plain(a)} -> {_plain(b)}")
    metrics = sorted(diffs.values(), key=lambda d: ({"added": 0, "changed": 1, "removed": 2}[d.change], d.name))
    to_build = [d.name for d in metrics if d.backfill]
    drafts = [d.name for d in metrics if d.breaking and d.status == "draft"]
    plan = build_backfill_plan(head_project, to_build, now, drafts)
    unchanged = len(set(old_public) & set(new_public)) - sum(1 for d in metrics if d.change == "changed")
    return ProjectDiff(base, metrics, unchanged, dict(sorted(sql_diff.items())), plan, notes)


# ---------------------------------------------------------------------------- entry point

def _raw_files(paths: ProjectPaths) -> dict[str, tuple[str, str]]:
    """name -> (relative path, file text) of every metric file, read as plain YAML."""
    out = {}
    for f in metric_files(paths):
        text = f.read_text(encoding="utf-8", errors="replace")  # (a file that is not UTF-8: validation says so)
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, OverflowError):  # a broken file (validation reports it)
            data = None
        name = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else f.stem
        out[name] = (paths.relative(f), text)
    return out


def _file_level(base_paths: ProjectPaths, head_paths: ProjectPaths, head: MetricsProject, base: BaseRef,
                issues: list[str], now) -> ProjectDiff:
    """The base does not validate: compare metric files as text. A metric whose file
    changed is taken as breaking (a backfill never hurts, a missed one would)."""
    old, new = _raw_files(base_paths), _raw_files(head_paths)
    public = {m.name: m for m in head.public()}

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else None

    # _config.yml's defaults (start, grains) reach every metric that does not set its own
    config_changed = text(base_paths.config_file) != text(head_paths.config_file)
    edited = {n for n in new if n in public and (n not in old or old[n][1] != new[n][1] or config_changed)}
    memo: dict[str, bool] = {}

    def reads_edited(name: str) -> bool:  # a ratio or derived metric over an edited one
        if name not in memo:
            memo[name] = False
            memo[name] = any(i in edited or reads_edited(i) for i in head.metrics[name].inputs)
        return memo[name]

    diffs = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            diffs.append(MetricDiff(name, "removed", "removed", "?", "?", old[name][0]))
        elif name in public and (name in edited or reads_edited(name)):
            m = public[name]
            impact = ("new" if name not in old else "breaking") if m.status != "archived" else "archived"
            why = ("its file changed" if old.get(name, (None, None))[1] != new[name][1]
                   else "_config.yml changed" if config_changed else "it reads a metric whose file changed")
            d = MetricDiff(name, "added" if name not in old else "changed", impact, m.kind, m.status, m.path,
                           reasons=[] if name not in old else [f"the base does not validate and {why}: taken as breaking"],
                           start=m.start.isoformat(), grains=list(m.grains))
            d.models = sorted(_models(head, name))
            diffs.append(d)
    plan = build_backfill_plan(head, [d.name for d in diffs if d.backfill], now,
                               [d.name for d in diffs if d.breaking and d.status == "draft"])
    unchanged = len(set(old) & set(new)) - sum(1 for d in diffs if d.change == "changed")
    notes = [f"the base ({base.ref}) does not validate ({len(issues)} problem(s)): metrics are compared file by file, "
             "every changed file is taken as breaking, and no SQL diff is shown"]
    notes += upstream_notes(base_paths, head_paths, head)
    return ProjectDiff(base, diffs, unchanged, {}, plan, notes, issues)


def diff_against(paths: ProjectPaths, ref: str, now=None) -> ProjectDiff:
    """The working tree at `paths` against git ref `ref`."""
    base = resolve(paths.root, ref)
    head = load_project(paths)
    if head.issues:
        raise DiffError(f"the working tree does not validate ({len(head.issues)} problem(s), run `metrics validate`):\n"
                        + "\n".join(str(i) for i in head.issues))
    now = now or now_utc()
    with tempfile.TemporaryDirectory(prefix="metrics-diff-") as tmp:
        base_paths = export_project(paths.root, base, Path(tmp))
        old = load_project(base_paths)
        if old.issues:
            return _file_level(base_paths, paths, head.project, base, [str(i) for i in old.issues], now)
        return diff_projects(base_paths, old.project, paths, head.project, base, now)

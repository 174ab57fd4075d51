"""Load a metrics project: read every YAML file, validate it, resolve it. Returns all
problems at once, never just the first."""
from __future__ import annotations

import re
from dataclasses import dataclass, field as _field
from pathlib import Path

from pydantic import ValidationError

from ..alerting.config import AlertsConfig
from ..alerting.load import load_alerts, route_issues
from ..paths import ProjectPaths
from ..spec.raw import GRAINS, AnomalySpec, InlineMeasure, MetricSpec, ProjectConfig
from ..spec.resolved import ZERO_FILLED, Measure, Metric, MetricsProject
from ..spec.yaml_lines import LocatedYaml, YamlSyntaxError, load_located
from .catalog import Catalog, load_catalog
from .issues import ValidationIssue
from .pydantic_issues import pydantic_issues as _pydantic_issues
from .rules import COLUMN_RULES, RULES, Context, SpecFile, references
from .sql_fragment import evaluate_arithmetic, parse_arithmetic, parse_scalar


@dataclass
class LoadResult:
    project: MetricsProject | None
    issues: list[ValidationIssue]
    files: int
    alerts: AlertsConfig = _field(default_factory=AlertsConfig)  # alerts.yml (empty when absent or invalid)

    @property
    def ok(self) -> bool:
        return not self.issues


# dbt renders every model and properties file as a Jinja template: text from a metric
# file must never reach one as template code (README, "Text is data")
_TEMPLATE_MARKS = ("{{", "{%", "{#")
_DOMAIN = re.compile(r"^[A-Za-z0-9_]+$")
_FOLDER = re.compile(r"^[A-Za-z0-9_-]+$")


def template_issues(rel: str, located: LocatedYaml) -> list[ValidationIssue]:
    """Every key or string value holding a Jinja delimiter, at its line."""
    out: list[ValidationIssue] = []

    def walk(value, loc) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, (*loc, k))
                walk(v, (*loc, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*loc, i))
        elif isinstance(value, str):
            mark = next((m for m in _TEMPLATE_MARKS if m in value), None)
            if mark:
                field = ".".join(str(p) for p in loc) or "file"
                out.append(ValidationIssue(rel, located.line_of(loc),
                                           f"`{field}` contains `{mark}`: metric files are data, never dbt/Jinja template "
                                           "code; remove the template delimiter", "template"))

    walk(located.data, ())
    return out


def _load_config(paths: ProjectPaths, issues: list[ValidationIssue]) -> ProjectConfig:
    if not paths.config_file.exists():
        return ProjectConfig()
    rel = paths.relative(paths.config_file)
    try:
        located = load_located(paths.config_file)
        issues.extend(ValidationIssue(rel, line, message, "yaml") for line, message in located.problems)
        found = template_issues(rel, located)
        if found:
            issues.extend(found)
            return ProjectConfig()
        return ProjectConfig.model_validate(located.data or {})
    except YamlSyntaxError as err:
        issues.append(ValidationIssue(rel, err.line, err.message, "yaml"))
    except ValidationError as err:
        issues.extend(_pydantic_issues(rel, located, err, ProjectConfig))
    return ProjectConfig()


def _shown(name: str) -> str:
    """A folder name on one line (a line break in it is shown as \\n)."""
    return name.encode("unicode_escape").decode("ascii")


METRIC_FILES = "the *.yml and *.yaml files under {dir}/ (not `_config.yml`, not a name starting with `_` or `.`, " \
               "not in a folder starting with `.`)"


def metric_files(paths: ProjectPaths, only: list[Path] | None = None) -> list[Path]:
    """Every metric file: `_config.yml` and other `_` files are not metrics; hidden files
    and folders (an editor's `.#orders.yml`, a `.archive/`) are not read."""
    files = sorted(p for p in paths.metrics_dir.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
                   and not p.name.startswith(("_", "."))
                   and not any(part.startswith(".") for part in p.relative_to(paths.metrics_dir).parts))
    if only:
        wanted = [Path(p).resolve() for p in only]
        files = [f for f in files if any(f.resolve() == w or w in f.resolve().parents for w in wanted)]
    return files


def load_project(paths: ProjectPaths, only: list[Path] | None = None, catalog: Catalog | None = None) -> LoadResult:
    """Validate every metric file (all of them: references cross files) and resolve.
    `only` narrows which files' problems are reported."""
    issues: list[ValidationIssue] = []
    config = _load_config(paths, issues)
    catalog = catalog or load_catalog([paths.models_dir, paths.seeds_dir], skip=paths.generated_dir)
    issues.extend(ValidationIssue(rel, line, message, "dbt-yaml") for rel, line, message in catalog.problems)
    spec_files: list[SpecFile] = []
    partial_files: list[SpecFile] = []  # files with a schema problem, read without its fields
    unreadable: dict[str, str] = {}
    all_files = metric_files(paths)
    # `orders.YML` was skipped without a word: the metric never built
    for path in sorted(p for p in paths.metrics_dir.rglob("*") if p.suffix.lower() in (".yml", ".yaml")
                       and p.suffix not in (".yml", ".yaml") and p.is_file()
                       and (not p.name.startswith(("_", ".")) or p.stem == "_config")
                       and not any(part.startswith(".") for part in p.relative_to(paths.metrics_dir).parts)):
        issues.append(ValidationIssue(paths.relative(path), 1, f"a metric file ends in .yml or .yaml, lowercase: rename "
                                      f"it to `{path.stem}{path.suffix.lower()}` (this one is not read)", "yaml"))
    for path in all_files:
        rel = paths.relative(path)
        unreadable[path.stem] = rel  # until its spec is read
        try:
            located = load_located(path)
        except YamlSyntaxError as err:
            issues.append(ValidationIssue(rel, err.line, err.message, "yaml"))
            continue
        issues.extend(ValidationIssue(rel, line, message, "yaml") for line, message in located.problems)
        if not isinstance(located.data, dict):
            issues.append(ValidationIssue(rel, 1, "a metric file is a mapping of fields (name:, source:, ...)", "yaml"))
            continue
        parts = Path(rel).parts
        if len(parts) > 2 and not _DOMAIN.match(parts[1]):
            issues.append(ValidationIssue(rel, 1, f"domain folder `{_shown(parts[1])}` may hold only letters, digits "
                                          "and _ (it names the Dagster asset group)", "domain"))
        deeper = [p for p in parts[2:-1] if not _FOLDER.match(p)]
        if deeper:  # a path reaches generated SQL comments and the catalog: plain names only
            issues.append(ValidationIssue(rel, 1, f"folder `{_shown(deeper[0])}` may hold only letters, digits, _ "
                                          "and -", "domain"))
        found = template_issues(rel, located)
        if found:
            issues.extend(found)
            continue
        if isinstance(located.data.get("name"), str):
            unreadable[located.data["name"]] = rel
        try:
            spec_files.append(SpecFile(rel, located, MetricSpec.model_validate(located.data)))
        except ValidationError as err:
            issues.extend(_pydantic_issues(rel, located, err, MetricSpec))
            partial = _without_bad_fields(rel, located, err)
            if partial is not None:
                partial_files.append(partial)
            continue
        unreadable.pop(path.stem, None)
        unreadable.pop(spec_files[-1].spec.name, None)
    alerts, alert_issues = load_alerts(paths)
    issues.extend(alert_issues)
    if not alert_issues:
        issues.extend(route_issues(paths, alerts, spec_files))
    valid = {f.spec.name for f in spec_files}
    ctx = Context(spec_files, catalog, unreadable={n: r for n, r in unreadable.items() if n not in valid})
    for rule in RULES:
        issues.extend(rule.check(ctx))
    partial = Context(partial_files, catalog)
    for rule in COLUMN_RULES:  # the same run reports a bad column next to a bad field
        issues.extend(rule.check(partial))
    project = None
    if not issues:
        project = _resolve(paths, config, ctx, issues, alerts)
    else:
        issues.extend(_sound_part_issues(paths, config, ctx, issues, alerts))
    if only:
        shown = {paths.relative(p) for p in metric_files(paths, only)}
        issues = [i for i in issues if i.file in shown or not i.file.startswith("metrics/")]
    return LoadResult(project if not issues else None, sorted(set(issues)), len(all_files), alerts)


# fields whose problem says nothing about the source's columns: without them, the rest of
# the file is still checked against its source (a misspelt grain and an unknown column are
# reported in one run, not one after the other is fixed)
_DROPPABLE = frozenset({"description", "owner", "status", "grains", "start", "anomaly", "tags", "alerts", "fill",
                        "percentile", "dimensions", "filter", "expression"})


def _without_bad_fields(rel: str, located: LocatedYaml, err: ValidationError) -> SpecFile | None:
    """The file read without the top-level fields pydantic refused, when those fields
    leave its measure's shape (kind, source, timestamp, aggregation, sides) intact."""
    bad = {e["loc"][0] for e in err.errors() if e["loc"]}
    if not bad or not bad <= _DROPPABLE:
        return None
    try:
        spec = MetricSpec.model_validate({k: v for k, v in located.data.items() if k not in bad})
    except ValidationError:
        return None
    return SpecFile(rel, located, spec)


def _sound_part_issues(paths: ProjectPaths, config: ProjectConfig, ctx: Context, issues: list[ValidationIssue],
                       alerts: AlertsConfig) -> list[ValidationIssue]:
    """The checks that need resolved metrics (dimensions and grains an input shares), for
    the metrics whose files, and their inputs' files, have no problem: validate prints
    every problem at once, not these only after the others are fixed. Nothing when
    `_config.yml` has a problem (its defaults reach every metric)."""
    bad = {i.file for i in issues}
    if paths.relative(paths.config_file) in bad:
        return []
    sound: dict[str, bool] = {}

    def is_sound(name: str, seen: frozenset = frozenset()) -> bool:
        if name not in sound:
            f = ctx.by_name.get(name)
            sound[name] = (f is not None and f.rel not in bad and name not in seen
                           and all(is_sound(r, seen | {name}) for _, r in references(f.spec)))
        return sound[name]

    part = Context([f for f in ctx.files if is_sound(f.spec.name)], ctx.catalog)
    found: list[ValidationIssue] = []
    try:
        _resolve(paths, config, part, found, alerts)
    except Exception:  # noqa: BLE001 (a best effort on a project already reported broken)
        return []
    return found


def _measure(m: MetricSpec | InlineMeasure, columns) -> Measure:
    return Measure(
        source=m.source, timestamp=m.timestamp.lower(), aggregation=m.aggregation,
        expression=parse_scalar(m.expression, columns) if m.expression else None,
        filter=parse_scalar(m.filter, columns) if m.filter else None,
        percentile=m.percentile,
    )


def _anomaly(config: ProjectConfig, s: MetricSpec) -> AnomalySpec:
    """Field by field: the metric's own, then `_config.yml` `anomaly:`, then the defaults.
    Detection is on by default for active metrics only; a draft is scored only when its
    own file says `enabled: true`."""
    merged: dict = {}
    for layer in (config.anomaly, s.anomaly):
        if layer is not None:
            merged.update({k: getattr(layer, k) for k in layer.model_fields_set})
    own_enabled = s.anomaly is not None and "enabled" in s.anomaly.model_fields_set
    if s.status != "active" and not own_enabled:
        merged["enabled"] = False
    return AnomalySpec(**merged)


def _seasonality_issues(f: SpecFile, metric: Metric, paths: ProjectPaths) -> list[ValidationIssue]:
    """An explicit seasonality whose cycle, at one of the metric's grains, the training
    window cannot hold twice: the detector would score that grain without it (a profile
    needs two cycles), which is not what the file says."""
    a = metric.anomaly
    # an archived metric is never scored, whatever its block says
    if not a.enabled or metric.status == "archived" or a.seasonality == "auto" or a.training_buckets is None:
        return []
    from ..anomaly.settings import PERIOD, DetectorSettings, candidates, min_cycles
    settings = DetectorSettings(seasonality=a.seasonality, training_buckets=a.training_buckets)
    own = f.spec.anomaly.model_fields_set if f.spec.anomaly is not None else set()
    where = ("anomaly", "training_buckets") if "training_buckets" in own else \
        ("anomaly", "seasonality") if "seasonality" in own else ("anomaly",) if "anomaly" in f.located.data else ("name",)
    inherited = [f"`{k}`" for k in ("seasonality", "training_buckets") if k not in own]
    told = f" ({' and '.join(inherited)} from {paths.relative(paths.config_file)} `anomaly:`)" if inherited else ""
    for grain in metric.grains:
        cycle = candidates(grain, settings)[0]
        need = min_cycles(settings) * PERIOD[cycle]
        if a.training_buckets < need:
            read_as = "" if cycle == a.seasonality else f", read as `{cycle}` at the {grain} grain,"
            return [f.issue(where, f"`seasonality: {a.seasonality}`{read_as} needs a training window of two cycles, "
                                   f"{need} {grain} buckets, but `training_buckets` is {a.training_buckets}{told}: "
                                   f"the {grain} grain would be scored without seasonality. Raise training_buckets to "
                                   f"{need} or more, or write `seasonality: auto` (which keeps a cycle only where the "
                                   "window holds it)", "anomaly")]
    return []


def _resolve(paths: ProjectPaths, config: ProjectConfig, ctx: Context, issues: list[ValidationIssue],
             alerts: AlertsConfig) -> MetricsProject:
    resolved: dict[str, Metric] = {}

    def common(f: SpecFile) -> dict:
        s, rel = f.spec, f.rel
        parts = Path(rel).parts
        return dict(
            path=rel, line=f.located.line_of(("name",)), domain=parts[1] if len(parts) > 2 else "default",
            status=s.status, description=s.description, owner=s.owner or config.owner,
            anomaly=_anomaly(config, s),
            alerts=tuple(s.alerts), tags=tuple(s.tags),
        )

    def resolve(name: str) -> Metric:
        if name in resolved:
            return resolved[name]
        f = ctx.by_name[name]
        s = f.spec
        own_grains = tuple(g for g in GRAINS if g in (s.grains or config.grains))
        if s.kind == "simple":
            columns = ctx.catalog.get(s.source).columns
            measure = _measure(s, columns)
            metric = Metric(name=name, kind="simple", grains=own_grains, start=s.start or config.start,
                            dimensions=tuple(d.lower() for d in s.dimensions or ()), measure=measure,
                            fill=0.0 if s.aggregation in ZERO_FILLED else None, **common(f))
        else:
            inputs: list[Metric] = []
            if s.kind == "ratio":
                named = [resolve(getattr(s, side)) for side in ("numerator", "denominator") if isinstance(getattr(s, side), str)]
                for side in ("numerator", "denominator"):
                    value = getattr(s, side)
                    if isinstance(value, str):
                        inputs.append(resolve(value))
                        continue
                    columns = ctx.catalog.get(value.source).columns
                    dims = tuple(d.lower() for d in (s.dimensions or (named[0].dimensions if named else ())) if d.lower() in columns)
                    # the grains the ratio can have: an hour rollup of its inline side nobody reads is waste
                    side_grains = tuple(g for g in own_grains if all(g in n.grains for n in named))
                    hidden = Metric(
                        name=f"{name}__{side}", kind="simple", grains=side_grains or own_grains, start=s.start or config.start,
                        dimensions=dims, measure=_measure(value, columns),
                        fill=0.0 if value.aggregation in ZERO_FILLED else None, public=False, **common(f))
                    resolved[hidden.name] = hidden
                    inputs.append(hidden)
                formula, fill = None, None
            else:
                formula = parse_arithmetic(s.expression)
                inputs = [resolve(r) for _, r in references(s)]
                fill = evaluate_arithmetic(formula.tree, {m.name: m.fill for m in inputs})
            shared = [d for d in inputs[0].dimensions if all(d in m.dimensions for m in inputs[1:])]
            dims = tuple(d.lower() for d in s.dimensions) if s.dimensions is not None else tuple(shared)
            if any(d not in shared for d in dims):
                # what each input could be broken down by: an inline side by its source's columns
                def could(m: Metric) -> set[str]:
                    return set(m.dimensions) if m.public else set(ctx.catalog.get(m.measure.source).columns)

                def shown(m: Metric) -> str:
                    return m.name if m.public else f"the inline {m.name.rsplit('__', 1)[1]} ({m.measure.source})"

                possible = [d for d in (inputs[0].dimensions if inputs[0].public else sorted(could(inputs[0])))
                            if all(d in could(m) for m in inputs)]
                for i, d in enumerate(dims):
                    if d not in shared:
                        lacking = ", ".join(shown(m) for m in inputs if d not in could(m)) or \
                            ", ".join(shown(m) for m in inputs if d not in m.dimensions)
                        issues.append(f.issue(("dimensions", i), f"dimension `{d}` is not shared by all inputs: "
                                              f"{lacking} has no `{d}`; shared: {', '.join(possible) or 'none'}",
                                              "dimensions"))
            grains = tuple(g for g in own_grains if all(g in m.grains for m in inputs))
            if not grains:
                issues.append(f.issue(("grains",) if s.grains else ("name",), "no grain is shared by this metric and all its inputs", "grains"))
            start = max([m.start for m in inputs] + ([s.start] if s.start else []))
            metric = Metric(name=name, kind=s.kind, grains=grains, start=start, dimensions=dims, fill=fill,
                            numerator=inputs[0].name if s.kind == "ratio" else None,
                            denominator=inputs[1].name if s.kind == "ratio" else None,
                            formula=formula, inputs=tuple(m.name for m in inputs), **common(f))
        resolved[name] = metric
        issues.extend(_seasonality_issues(f, metric, paths))
        return metric

    for name in sorted(ctx.by_name):
        resolve(name)
    sources = {m.measure.source for m in resolved.values() if m.measure is not None}
    categorical = {src: ctx.catalog.get(src).categorical for src in sorted(sources) if ctx.catalog.get(src)}
    return MetricsProject(config=config, metrics=dict(sorted(resolved.items())), specs={f.spec.name: f.spec for f in ctx.files},
                          categorical=categorical, alerts=alerts)

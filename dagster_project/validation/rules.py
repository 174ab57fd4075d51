"""Validation rules: each a small class that looks at the loaded files and returns
issues, every one with a file, a line and what to do about it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot import exp

from ..spec.raw import InlineMeasure, MetricSpec
from ..spec.yaml_lines import LocatedYaml, Loc
from .catalog import Catalog
from .column_types import comparison_problems, is_string_type, is_time_type, operand_problems, unlabelled_dimension, value_kind
from .issues import ValidationIssue, closest
from .sql_fragment import FragmentError, UnknownColumns, check_condition, parse_arithmetic, parse_scalar


@dataclass
class SpecFile:
    rel: str
    located: LocatedYaml
    spec: MetricSpec

    def issue(self, loc: Loc, message: str, rule: str) -> ValidationIssue:
        return ValidationIssue(self.rel, self.located.line_of(loc), message, rule)


@dataclass
class Context:
    files: list[SpecFile]
    catalog: Catalog
    by_name: dict[str, SpecFile] = field(default_factory=dict)
    # metric files that could not be read (their own problem is reported), name -> path: a
    # reference to one is not an "unknown metric", but it cannot be built either
    unreadable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in self.files:
            self.by_name.setdefault(f.spec.name, f)


class Rule:
    name = "rule"

    def check(self, ctx: Context) -> list[ValidationIssue]:
        raise NotImplementedError


class FileNameMatchesName(Rule):
    name = "file-name"

    def check(self, ctx):
        return [
            f.issue(("name",), f"name `{f.spec.name}` differs from the file name `{Path(f.rel).stem}`: rename one so they match", self.name)
            for f in ctx.files if Path(f.rel).stem != f.spec.name
        ]


class UniqueNames(Rule):
    name = "unique-name"

    def check(self, ctx):
        out = []
        for f in ctx.files:
            first = ctx.by_name[f.spec.name]
            if first is not f:
                out.append(f.issue(("name",), f"metric `{f.spec.name}` is already defined in {first.rel}: names must be unique", self.name))
        return out


_SIMPLE_ONLY = ("source", "timestamp", "aggregation", "filter", "percentile")
_REQUIRED = {"simple": ("source", "timestamp", "aggregation"), "ratio": ("numerator", "denominator"), "derived": ("expression",)}


class KindFields(Rule):
    """Each kind has its own required fields and refuses the others' fields."""

    name = "kind-fields"

    def check(self, ctx):
        out = []
        for f in ctx.files:
            s = f.spec
            for key in _REQUIRED[s.kind]:
                if getattr(s, key) is None:
                    out.append(f.issue(("kind",) if "kind" in f.located.data else ("name",), f"a {s.kind} metric needs `{key}`", self.name))
            forbidden = {"simple": ("numerator", "denominator"), "ratio": _SIMPLE_ONLY + ("expression",), "derived": _SIMPLE_ONLY + ("numerator", "denominator")}[s.kind]
            for key in forbidden:
                if getattr(s, key) is not None:
                    out.append(f.issue((key,), f"`{key}` does not apply to a {s.kind} metric: remove it", self.name))
            if s.kind == "simple" and s.aggregation:
                out += _measure_shape(f, (), s)
        return out


def _measure_shape(f: SpecFile, prefix: Loc, m: MetricSpec | InlineMeasure) -> list[ValidationIssue]:
    out = []
    if m.aggregation == "percentile":
        if m.percentile is None:
            out.append(f.issue((*prefix, "aggregation"), "a percentile metric needs `percentile:` between 0 and 1 (e.g. 0.95)", "percentile"))
        elif not 0 < m.percentile < 1:
            out.append(f.issue((*prefix, "percentile"), f"percentile {m.percentile} is outside (0, 1): write e.g. 0.95 for p95", "percentile"))
    elif m.percentile is not None:
        out.append(f.issue((*prefix, "percentile"), "`percentile` only applies to `aggregation: percentile`", "percentile"))
    if m.aggregation != "count" and m.expression is None:
        out.append(f.issue((*prefix, "aggregation"), f"`aggregation: {m.aggregation}` needs `expression:` (the column or SQL to aggregate)", "kind-fields"))
    return out


def measures(spec: MetricSpec):
    """(where, measure) for every aggregation a metric file writes out: a simple metric
    itself, and each inline side of a ratio."""
    if spec.kind == "simple" and spec.source:
        yield (), spec
    if spec.kind == "ratio":
        for side in ("numerator", "denominator"):
            m = getattr(spec, side)
            if isinstance(m, InlineMeasure):
                yield (side,), m


class SourceColumns(Rule):
    """Sources exist; timestamp, dimensions, filter and expression use their columns."""

    name = "source-columns"

    def check(self, ctx):
        out = []
        # per rollup (source and timestamp column): the names its scan gives its own columns
        # (compiler/rollup_sql.py, macros/metrics_rollup*.sql): a raw filter column of the
        # same name would be shadowed by them
        generated: dict[tuple, set[str]] = {}
        for f in ctx.files:
            for prefix, m in measures(f.spec):
                if m.source and m.timestamp:
                    names = generated.setdefault((m.source, m.timestamp.lower()), {"bucket_start", "event_at"})
                    dims = [d.lower() for d in f.spec.dimensions or []]
                    aliases = {f"dim_{d}" if re.fullmatch(r"[a-z0-9_]{1,40}", d) else None for d in dims}
                    if None in aliases:  # an odd name is numbered instead
                        aliases = (aliases - {None}) | {f"dim_{n}" for n in range(1, 100)}
                    names |= aliases | {f"g_{a}" for a in aliases}
                    names.add(f.spec.name[:40] + "__")  # <metric>__measured and its aggregates' columns
        for f in ctx.files:
            for prefix, m in measures(f.spec):
                if prefix:  # an inline ratio side: its shape is checked here
                    out += _measure_shape(f, prefix, m)
                clash = generated.get((m.source, (m.timestamp or "").lower()), set())
                out += self._measure(ctx, f, prefix, m, (f.spec.dimensions or []) if not prefix else [], clash)
        return out

    def _measure(self, ctx, f, prefix, m, dimensions, generated: set[str]):
        rel = ctx.catalog.get(m.source)
        if rel is None:
            broken = "".join(f"; {p} could not be read ({why})" for p, why in sorted(ctx.catalog.unreadable.items()))
            return [f.issue((*prefix, "source"), f"unknown source `{m.source}`{closest(m.source, ctx.catalog.relations)}: "
                            "declare the model or seed (with its columns) in a dbt YAML file under models/staging/ or "
                            f"seeds/{broken}", self.name)]
        if not _built_by_run(rel):
            return [f.issue((*prefix, "source"), f"source `{m.source}` is declared in {rel.declared_in}: `metrics run` "
                            "builds the staging models (models/staging/, tagged `staging` in dbt_project.yml) and the "
                            "seeds; move the model and its YAML under models/staging/", self.name)]
        out = []
        if m.timestamp and m.timestamp.lower() not in rel.columns:
            out.append(f.issue((*prefix, "timestamp"), f"`{m.source}` has no column `{m.timestamp}`{closest(m.timestamp, rel.columns)} ({rel.declared_in})", self.name))
        for i, dim in enumerate(dimensions):
            if dim.lower() not in rel.columns:
                out.append(f.issue((*prefix, "dimensions", i), f"dimension `{dim}` is not a column of `{m.source}`{closest(dim, rel.columns)} ({rel.declared_in})", self.name))
            elif unlabelled_dimension(rel.columns.get(dim.lower())):
                out.append(f.issue((*prefix, "dimensions", i), f"dimension `{dim}` is {rel.columns[dim.lower()]} "
                                   f"({rel.declared_in}): its values read as different texts per warehouse (DuckDB "
                                   "writes 100.0 where the others write 100, ClickHouse pads fractional seconds), so "
                                   "a slice would not carry across; a dimension is a text, a whole number, a boolean "
                                   "or a date (cast it in the staging model)", self.name))
        if len(set(d.lower() for d in dimensions)) != len(dimensions):
            out.append(f.issue((*prefix, "dimensions"), "a dimension is listed twice", self.name))
        for key in ("expression", "filter"):
            text = getattr(m, key)
            if text is None:
                continue
            try:
                parsed = parse_scalar(text, rel.columns)
                if key == "filter":
                    check_condition(parsed, rel.columns)
                    out += [f.issue((*prefix, key), f"`filter` uses column `{c}`, a name the generated rollup gives one of "
                                    "its own columns (bucket_start, event_at, dim_<dimension>, <metric>__...): its value "
                                    "would be read instead; rename the column in the staging model", self.name)
                            for c in parsed.columns if _clashes(generated, c)]
            except UnknownColumns as err:
                out.append(f.issue((*prefix, key), f"`{key}` uses unknown column(s) {', '.join(f'`{c}`' for c in err.names)} of `{m.source}`"
                                   + (closest(err.names[0], rel.columns) if len(err.names) == 1 else ""), self.name))
            except FragmentError as err:
                out.append(f.issue((*prefix, key), f"`{key}` {err}", "sql-fragment"))
        return out


def _clashes(generated: set[str], column: str) -> bool:
    c = column.lower()
    return c in generated or any(c.startswith(n) for n in generated if n.endswith("__"))


# aggregations whose result is the rollup's double `value`: they need a number
_NUMERIC_AGGREGATIONS = ("sum", "avg", "percentile", "min", "max", "latest")


class ColumnTypes(Rule):
    """Where the dbt YAML declares a column's `data_type`: the `timestamp:` column is a
    time type, sum/avg/percentile/min/max/latest do not aggregate a bare string, boolean
    or time column (the rollup's value is a double), and a filter or expression compares a
    column only with literals of a type it can take (column_types.py). Undeclared types
    are left to the build."""

    name = "column-types"

    def check(self, ctx):
        out = []
        for f in ctx.files:
            for prefix, m in measures(f.spec):
                out += self._measure(ctx, f, prefix, m)
        return out

    def _measure(self, ctx, f, prefix, m):
        rel = ctx.catalog.get(m.source)
        if rel is None:
            return []  # SourceColumns reports it
        out = []
        declared = rel.columns.get(m.timestamp.lower()) if m.timestamp else None
        if declared and not is_time_type(declared):
            out.append(f.issue((*prefix, "timestamp"), f"timestamp column `{m.timestamp}` is {declared} in {rel.declared_in}: "
                               "it must be a time type (timestamp, timestamptz, datetime, date)", self.name))
        if m.aggregation in _NUMERIC_AGGREGATIONS and m.expression:
            column = _bare_column(m.expression)
            declared = rel.columns.get(column) if column else None
            if declared and (is_string_type(declared) or is_time_type(declared)):
                out.append(f.issue((*prefix, "expression"), f"{m.aggregation} needs a numeric column; `{column}` is {declared} in "
                                   f"{rel.declared_in} (count and count_distinct accept any column)", self.name))
            cast = _top_cast(m.expression)
            if cast is not None and (is_string_type(cast) or cast in ("boolean", "bool")):
                out.append(f.issue((*prefix, "expression"), f"{m.aggregation} needs a number; the expression is cast to {cast} "
                                   "(count and count_distinct accept any value)", self.name))
            elif not (declared and (is_string_type(declared) or is_time_type(declared))):
                # `lower(country)`, `'abc'`, a `case` of texts: the build would fail the whole source
                try:
                    kind = value_kind(parse_scalar(m.expression, rel.columns).tree, rel.columns)
                except FragmentError:
                    kind = None  # SourceColumns reports it
                if kind in ("text", "boolean", "time"):
                    out.append(f.issue((*prefix, "expression"), f"{m.aggregation} needs a number; `{m.expression}` is "
                                       f"{'a ' + kind if kind == 'time' else kind} (from the types declared in "
                                       f"{rel.declared_in}; count and count_distinct accept any value)", self.name))
        for key in ("expression", "filter"):
            text = getattr(m, key)
            try:
                tree = parse_scalar(text, rel.columns).tree if text else None
            except FragmentError:
                continue  # SourceColumns reports it
            out += [f.issue((*prefix, key), f"`{key}`: {p} ({rel.declared_in})", self.name)
                    for p in ([] if tree is None else comparison_problems(tree, rel.columns) + operand_problems(tree, rel.columns))]
        return out


def _top_cast(text: str) -> str | None:
    """The type an expression is cast to at its top (`cast(x as varchar)`), lowercase."""
    try:
        tree = parse_scalar(text).tree
    except FragmentError:
        return None
    while isinstance(tree, exp.Paren):
        tree = tree.this
    return tree.to.sql().lower() if isinstance(tree, exp.Cast) else None


def _bare_column(text: str) -> str | None:
    """The column name when an expression is just a column (parentheses allowed)."""
    try:
        tree = parse_scalar(text).tree
    except FragmentError:
        return None  # SourceColumns reports it
    while isinstance(tree, exp.Paren):
        tree = tree.this
    return tree.name.lower() if isinstance(tree, exp.Column) else None


def references(spec: MetricSpec) -> list[tuple[Loc, str]]:
    """Other metrics a ratio or derived metric reads, with where each is named."""
    if spec.kind == "ratio":
        return [((side,), getattr(spec, side)) for side in ("numerator", "denominator") if isinstance(getattr(spec, side), str)]
    if spec.kind == "derived" and spec.expression:
        try:
            return [(("expression",), c) for c in parse_arithmetic(spec.expression).columns]
        except FragmentError:
            return []
    return []


class References(Rule):
    name = "references"

    def check(self, ctx):
        out = []
        for f in ctx.files:
            if f.spec.kind == "derived" and f.spec.expression:
                try:
                    parse_arithmetic(f.spec.expression)
                except FragmentError as err:
                    out.append(f.issue(("expression",), f"derived `expression` {err}", "sql-fragment"))
                else:
                    if not references(f.spec):  # `1 + 1`: a constant has no rows, no grains, no slices
                        out.append(f.issue(("expression",), "derived `expression` names no metric: combine other "
                                           "metrics' names, e.g. `revenue - refunds`", self.name))
            for loc, ref in references(f.spec):
                target = ctx.by_name.get(ref)
                if target is None and ref in ctx.unreadable:
                    out.append(f.issue(loc, f"`{ref}` cannot be read: see the problem in {ctx.unreadable[ref]}", self.name))
                    continue
                if target is None:
                    out.append(f.issue(loc, f"unknown metric `{ref}`{closest(ref, ctx.by_name)}", self.name))
                elif target.spec.status == "archived" and f.spec.status != "archived":
                    out.append(f.issue(loc, f"`{ref}` is archived: {'an' if f.spec.status == 'active' else 'a'} {f.spec.status} metric cannot read it", self.name))
                elif target.spec.status == "draft" and f.spec.status == "active":
                    out.append(f.issue(loc, f"`{ref}` is a draft: make it active first, or make this metric a draft too", self.name))
        return out


class NoCycles(Rule):
    name = "cycle"

    def check(self, ctx):
        graph = {name: [r for _, r in references(f.spec) if r in ctx.by_name] for name, f in ctx.by_name.items()}
        out, state = [], {}

        def visit(node, stack):
            state[node] = "open"
            for nxt in graph[node]:
                if state.get(nxt) == "open":
                    cycle = stack[stack.index(nxt):] + [nxt]
                    f = ctx.by_name[node]
                    out.append(f.issue(references(f.spec)[0][0], "metrics refer to each other in a cycle: " + " -> ".join(cycle), self.name))
                elif nxt not in state:
                    visit(nxt, stack + [nxt])
            state[node] = "done"

        for name in sorted(graph):
            if name not in state:
                visit(name, [name])
        return out


RULES: tuple[Rule, ...] = (FileNameMatchesName(), UniqueNames(), KindFields(), SourceColumns(), ColumnTypes(), References(), NoCycles())
# what a file with a schema problem is still checked by (project.py: read without its bad fields)
COLUMN_RULES: tuple[Rule, ...] = (SourceColumns(), ColumnTypes())


def _built_by_run(rel) -> bool:
    """A seed, or a model declared under models/staging/ (the folder dbt_project.yml tags
    `staging`: the staging job builds those before the rollups)."""
    return rel.kind == "seed" or rel.declared_in.startswith("models/staging/")

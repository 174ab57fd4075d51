"""A ProjectDiff as readable text, as Markdown (a PR comment or a CI job summary), as JSON."""
from __future__ import annotations

import datetime as dt
import json

from .diff import IMPACTS, FieldChange, MetricDiff, ProjectDiff

MAX_DIFF_LINES = 400  # per file in Markdown: a job summary is limited to 1 MiB


def _value(v) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _field(f: FieldChange) -> str:
    tag = "breaking" if f.breaking else "non-breaking"
    note = f" ({f.note})" if f.note else ""
    return f"{f.field}: {_value(f.old)} -> {_value(f.new)}  [{tag}]{note}"


def _headline(d: ProjectDiff) -> str:
    n = sum(1 for m in d.metrics if m.values_change)
    # a changed staging model or macro changes values no metric file says: never "no values change"
    tail = "; the notes name what else may change values" if d.notes else ""
    return (f"{d.count('added')} added, {d.count('changed')} changed, {d.count('removed')} removed, "
            f"{d.unchanged} unchanged; {_breaking(n, bool(d.notes))}{tail}")


def _breaking(n: int, notes: bool = False) -> str:
    # the metrics whose built values change: a new or newly active one has none yet (its
    # build is in the backfill plan)
    none = "no metric definition changes values" if notes else "no values change"
    return {0: none, 1: "1 metric's values change"}.get(n, f"{n} metrics' values change")


def _command(d: ProjectDiff) -> str:
    return f"metrics backfill --from-diff {d.base.ref}"


def text(d: ProjectDiff, values=None) -> str:
    subject = d.base.subject if len(d.base.subject) <= 60 else d.base.subject[:57] + "..."
    out = [f"metrics diff: {d.base.ref} ({d.base.short} {subject}) -> working tree", _headline(d)]
    for note in d.notes:
        out.append(f"note: {note}")
    for issue in d.base_issues:
        out.append(f"  base: {issue}")
    for m in d.metrics:
        out.append("")
        out.append(f"{m.change:8} {m.name}  ({m.kind}, {m.status}, {m.path})")
        out.append(f"         {m.impact}: {IMPACTS[m.impact]}")
        for f in m.fields:
            out.append(f"         - {_field(f)}")
        for r in m.reasons:
            out.append(f"         - {r}  [breaking]")
        if m.sql_changed:
            out.append(f"         generated SQL changes: {', '.join(m.sql_changed)}")
    out.append("")
    out += _plan_text(d)
    if values is not None:
        out.append("")
        out += _values_text(values)
    if d.sql_diff:
        out.append("")
        out.append("Generated SQL (models/metrics/):")
        for body in d.sql_diff.values():
            out.append(body.rstrip("\n"))
    return "\n".join(out) + "\n"


def _plan_text(d: ProjectDiff) -> list[str]:
    p = d.plan
    if p.empty:
        out = ["Backfill plan: nothing to recompute."]
    else:
        out = [f"Backfill plan ({_command(d)}): {', '.join(p.metrics)} from {p.start}, one run per grain",
               f"  {'grain':6} {'partition':10} {'first':11} {'last':11} {'partitions':>10}  metrics"]
        for g in p.grains:
            out.append(f"  {g.grain:6} {g.period:10} {g.first_partition:11} {g.last_partition:11} {g.partitions:>10}  "
                       f"{', '.join(g.metrics)}")
        out.append(f"  total: {sum(g.partitions for g in p.grains)} partitions in {len(p.grains)} runs")
    if p.drafts:
        out.append(f"  drafts changed (built on demand, not by Dagster): {', '.join(p.drafts)}; "
                   "rebuild with `metrics run --include-drafts`")
    return out


def _md(text_: str) -> str:
    return text_.replace("|", "\\|").replace("\n", " ")


def _code(v) -> str:
    s = _value(v).replace("`", "'")
    return f"`{_md(s)}`"


def markdown(d: ProjectDiff, values=None) -> str:
    out = [f"## Metrics diff against `{d.base.ref}` ({d.base.short})", "", _headline(d) + ".", ""]
    for note in d.notes:
        out.append(f"> **Note:** {_md(note)}")
        out.append("")
    if d.base_issues:
        out += ["<details><summary>Problems in the base</summary>", "", "```"] + d.base_issues + ["```", "</details>", ""]
    if d.metrics:
        out += ["| metric | change | impact | what changes | backfill |", "|---|---|---|---|---|"]
        for m in d.metrics:
            out.append(f"| `{m.name}` | {m.change} | {'**' + m.impact + '**' if m.breaking else m.impact} | "
                       f"{_summary(m)} | {'from ' + m.start if m.backfill else '—'} |")
        out.append("")
    else:
        out += ["No metric changes.", ""]
    details = [m for m in d.metrics if m.fields or m.reasons]
    for m in details:
        out.append(f"### `{m.name}` ({m.kind}, {m.status}, `{m.path}`)")
        out.append("")
        out.append(f"{m.impact}: {IMPACTS[m.impact]}")
        out.append("")
        for f in m.fields:
            tag = "**breaking**" if f.breaking else "non-breaking"
            note = f" ({_md(f.note)})" if f.note else ""
            out.append(f"- `{f.field}`: {_code(f.old)} → {_code(f.new)} — {tag}{note}")
        for r in m.reasons:
            out.append(f"- {_md(r)} — **breaking**")
        out.append("")
    out.append("### Backfill plan")
    out.append("")
    p = d.plan
    if p.empty:
        out.append("Nothing to recompute.")
    else:
        out.append(f"`{_command(d)}` rebuilds {', '.join(f'`{n}`' for n in p.metrics)} from {p.start}, one Dagster run per grain:")
        out.append("")
        out += ["| grain | partitioned by | first | last | partitions | metrics |", "|---|---|---|---|---:|---|"]
        for g in p.grains:
            out.append(f"| {g.grain} | {g.period} | {g.first_partition} | {g.last_partition} | {g.partitions} | "
                       f"{', '.join(g.metrics)} |")
    if p.drafts:
        out.append("")
        out.append(f"Changed drafts (built on demand, not by Dagster): {', '.join(p.drafts)}.")
    out.append("")
    if values is not None:
        out += _values_markdown(values)
    if d.sql_diff:
        out.append("### Generated SQL")
        out.append("")
        for rel, body in d.sql_diff.items():
            lines = body.splitlines()
            shown = lines[:MAX_DIFF_LINES]
            if len(lines) > MAX_DIFF_LINES:
                shown.append(f"... {len(lines) - MAX_DIFF_LINES} more lines (run `metrics diff --base {d.base.ref}`)")
            out += [f"<details><summary><code>models/metrics/{rel}</code></summary>", "", "```diff", *shown, "```",
                    "", "</details>", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _summary(m: MetricDiff) -> str:
    if m.change != "changed":
        return "—"
    parts = [("**" + f.field + "**") if f.breaking else f.field for f in m.fields]
    parts += [_md(r) for r in m.reasons]
    return ", ".join(parts)


def as_json(d: ProjectDiff, values=None) -> str:
    data = d.as_dict()
    if values is not None:
        data["values"] = values.as_dict()
    return json.dumps(data, indent=2) + "\n"


# ---------------------------------------------------------------------------- --values

def _pct(v) -> str:
    return "—" if v is None else f"{v * 100:.2f}%"


def _num(v) -> str:
    return "(none)" if v is None else f"{v:g}"


def _values_head(v) -> str:
    last = v.end - dt.timedelta(days=1)
    return (f"over the last {v.days} days ({v.start} .. {last}, UTC, the day in progress included) "
            f"on {v.target}, old (base) vs new (working tree) definitions")


def _example(e: dict) -> str:
    mark = " (in progress)" if e["in_progress"] else ""
    bucket = e["bucket"].replace("T", " ").removesuffix("Z")  # ISO 8601 UTC in JSON, as text reads it
    return f"{bucket}{mark} {e['slice']}: {_num(e['old'])} -> {_num(e['new'])}"


def _examples(m, n: int = 3) -> list[tuple[str, dict]]:
    """A few differing buckets of one grain (day if it differs, else the first that does);
    JSON has the examples of every grain."""
    grains = sorted((g for g in m.grains if g.examples), key=lambda g: g.grain != "day")
    return [(grains[0].grain, e) for e in grains[0].examples[:n]] if grains else []


def _values_text(v) -> list[str]:
    out = [f"Values {_values_head(v)}:"]
    if not v.metrics:
        out.append("  no changed metric to compare")
    for m in v.metrics:
        out.append(f"  {m.name} ({m.impact})")
        out.append(f"    {'grain':6} {'buckets':>8} {'differing':>9} {'max change':>11} {'mean change':>12}  total: differing")
        for g in m.grains:
            out.append(f"    {g.grain:6} {g.all.buckets:>8} {g.all.differing:>9} {_pct(g.all.max_change):>11} "
                       f"{_pct(g.all.mean_change):>12}  {g.total.differing}/{g.total.buckets}")
        for g, e in _examples(m):
            out.append(f"    e.g. {g} {_example(e)}")
        for note in m.notes:
            out.append(f"    note: {note}")
    for s in v.skipped:
        out.append(f"  skipped {s}")
    return out


def _values_markdown(v) -> list[str]:
    out = ["### Values", "", f"Values {_md(_values_head(v))}.", ""]
    if not v.metrics:
        out += ["No changed metric to compare.", ""]
    for m in v.metrics:
        out += [f"#### `{m.name}` ({m.impact})", "",
                "| grain | buckets | differing | max change | mean change | total: differing |", "|---|---:|---:|---:|---:|---:|"]
        for g in m.grains:
            out.append(f"| {g.grain} | {g.all.buckets} | {g.all.differing} | {_pct(g.all.max_change)} | "
                       f"{_pct(g.all.mean_change)} | {g.total.differing}/{g.total.buckets} |")
        examples = [f"- {g} {_md(_example(e))}" for g, e in _examples(m)]
        out += [""] + (["Examples:", ""] + examples + [""] if examples else [])
        out += [f"> {_md(n)}" for n in m.notes] + ([""] if m.notes else [])
    if v.skipped:
        out += ["Not compared: " + "; ".join(_md(s) for s in v.skipped) + ".", ""]
    return out


RENDERERS = {"text": text, "markdown": markdown, "json": as_json}

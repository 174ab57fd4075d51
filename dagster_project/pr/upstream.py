"""What feeds the metrics besides their YAML: the hand-written dbt models (staging), the
seeds and the dbt sources. A change there may change the values of every metric that
reads them, directly or through models that `ref` them, which comparing the metric
definitions cannot see: `metrics diff` names those metrics in a note."""
from __future__ import annotations

import re

import yaml

from ..paths import ProjectPaths
from ..spec.resolved import MetricsProject
from ..validation.catalog import sources_of

# ref('model'), ref('package', 'model'), ref('model', v=2): the model is the last quoted name
_REF = re.compile(r"""\bref\(\s*['"]([^'"]+)['"](?:\s*,\s*['"]([^'"]+)['"])?""")
_SOURCE = re.compile(r"""\bsource\(\s*['"]([^'"]+)['"]\s*,\s*['"]([^'"]+)['"]\s*\)""")


def _models(paths: ProjectPaths) -> dict[str, str]:
    """Hand-written models: name -> SQL (the generated folder is the metrics' own)."""
    root, generated = paths.models_dir, paths.generated_dir
    return {p.stem: p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*.sql"))
            if generated not in p.parents}


def _seeds(paths: ProjectPaths) -> dict[str, bytes]:
    root = paths.seeds_dir
    return {p.stem: p.read_bytes() for p in sorted(root.rglob("*.csv"))} if root.is_dir() else {}


def _sources(paths: ProjectPaths) -> dict[str, dict]:
    """`source.table` -> where its rows are read (database, schema, identifier)."""
    out: dict[str, dict] = {}
    for file in sorted(paths.models_dir.rglob("*.yml")):
        if paths.generated_dir in file.parents:
            continue
        try:
            doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, ValueError, OverflowError):
            continue  # validation reports an unreadable dbt YAML file
        for _, source, tables in sources_of(doc):
            for _, table in tables:
                if table.get("name") is not None:
                    # as dbt defaults them: the schema is the source's name, the identifier the table's
                    out[f"{source.get('name')}.{table['name']}"] = {
                        "database": table.get("database") or source.get("database"),
                        "schema": table.get("schema") or source.get("schema") or source.get("name"),
                        "identifier": table.get("identifier") or table["name"]}
    return out


def upstream_notes(base_paths: ProjectPaths, head_paths: ProjectPaths, head: MetricsProject) -> list[str]:
    """One note per changed model, seed or source, naming the metrics that read it."""
    models = _models(head_paths)
    feeds: dict[str, set[str]] = {}  # a model, seed or `source.table` -> the models reading it
    for name, sql in models.items():
        for used in [m.group(2) or m.group(1) for m in _REF.finditer(sql)] + \
                [f"{a}.{b}" for a, b in _SOURCE.findall(sql)]:
            feeds.setdefault(used, set()).add(name)

    def reached(node: str) -> set[str]:  # the node and every model downstream of it
        seen, todo = {node}, [node]
        while todo:
            for nxt in feeds.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def reads(metric, relations: set[str]) -> bool:  # directly, or through a ratio's or derived metric's inputs
        if metric.measure is not None:
            return metric.measure.source in relations
        return any(reads(head.metrics[i], relations) for i in metric.inputs)

    changed: list[tuple[str, str, str]] = []  # (node, what it is, how it changed)
    for kind, read, how in (("model", _models, "its SQL"), ("seed", _seeds, "its rows"),
                            ("source", _sources, "where its rows are read")):
        before, after = read(base_paths), read(head_paths)
        for name in sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n)):
            changed.append((name, kind, "added" if name not in before else "removed" if name not in after else how))
    notes = []
    for name, kind, how in changed:
        downstream = reached(name)
        over = sorted(m.name for m in head.public() if m.status != "archived" and reads(m, downstream))
        reading = f"the values of {', '.join(f'`{m}`' for m in over)} may change" if over else "no metric reads it"
        notes.append(f"{kind} `{name}` changed ({how}): {reading}; this plan does not recompute them: if their "
                     f"history changes, rebuild it (`metrics run --metric NAME --start DAY`)")
    return notes


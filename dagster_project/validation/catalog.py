"""Which relations a metric may read and their columns, from the dbt YAML files that
declare models and seeds (the same `columns:` lists dbt documents). No warehouse needed."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .freshness import THRESHOLDS, block_problem, freshness_config, table_freshness


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # "model" | "seed"
    columns: dict[str, str | None]  # name -> declared data_type
    declared_in: str  # the dbt YAML file, relative to the project root (models/..., seeds/...)
    # columns with few, known values (boolean, or an `accepted_values` test): a rollup
    # may group by them before filtering (see compiler/rollup_sql.py)
    categorical: frozenset[str] = frozenset()


@dataclass
class Catalog:
    relations: dict[str, Relation] = field(default_factory=dict)
    # dbt YAML files that could not be read (dbt reports them too), path -> why: a
    # relation declared in one is "unknown", and the message says where it may be
    unreadable: dict[str, str] = field(default_factory=dict)
    # (file, line, message) of declarations that break the build: validate reports them
    problems: list[tuple[str, int, str]] = field(default_factory=list)

    def get(self, name: str) -> Relation | None:
        return self.relations.get(name)


def load_catalog(roots: list[Path], skip: Path | None = None) -> Catalog:
    """Read every `*.yml` under `roots` (models/, seeds/) for `models:` and `seeds:`
    entries. `skip` (the generated folder) is ignored: metrics cannot read rollups."""
    catalog = Catalog()
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.yml")):
            if skip is not None and skip in path.parents:
                continue
            try:
                text = path.read_text(encoding="utf-8")
                doc = yaml.safe_load(text) or {}
            except (yaml.YAMLError, ValueError, OverflowError) as err:
                # (ValueError: a date like 2026-02-30, or a file that is not UTF-8)
                why = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "invalid YAML"
                catalog.unreadable[path.relative_to(root.parent).as_posix()] = why
                continue
            if not isinstance(doc, dict):
                continue
            _check_freshness(catalog, path.relative_to(root.parent).as_posix(), path, text, doc)
            for kind, key in (("model", "models"), ("seed", "seeds")):
                for entry in doc.get(key) or []:
                    if not isinstance(entry, dict) or "name" not in entry:
                        continue
                    columns = {
                        str(c["name"]).lower(): None if c.get("data_type") in (None, "") else str(c["data_type"])
                        for c in entry.get("columns") or []
                        if isinstance(c, dict) and "name" in c
                    }
                    for c in entry.get("columns") or []:
                        _check_accepted(catalog, path.relative_to(root.parent).as_posix(), text, entry, c)
                    catalog.relations[str(entry["name"])] = Relation(
                        str(entry["name"]), kind, columns, path.relative_to(root.parent).as_posix(),
                        frozenset(str(c["name"]).lower() for c in entry.get("columns") or [] if _categorical(c)),
                    )
    return catalog


def _categorical(column) -> bool:
    if not isinstance(column, dict) or "name" not in column:
        return False
    if str(column.get("data_type") or "").lower() in ("boolean", "bool"):
        return True
    tests = (column.get("data_tests") or []) + (column.get("tests") or [])
    return any(t == "accepted_values" or (isinstance(t, dict) and "accepted_values" in t) for t in tests)


def accepted_spec(column) -> dict | None:
    """A column's `accepted_values` test arguments (either form), or None."""
    if not isinstance(column, dict):
        return None
    for test in (column.get("data_tests") or []) + (column.get("tests") or []):
        spec = test.get("accepted_values") if isinstance(test, dict) else None
        if isinstance(spec, dict):
            return {**spec, **(spec.get("arguments") or {})}
    return None


def _check_accepted(catalog: Catalog, rel: str, text: str, entry: dict, column) -> None:
    """dbt's accepted_values test pastes each value between quotes into SQL as written: a
    value with a lone `'` ends the literal and the staging build fails on it."""
    spec = accepted_spec(column)
    if spec is None or spec.get("quote", True) is False:
        return
    for value in spec.get("values") or []:
        if isinstance(value, str) and re.search(r"(?<!')'(?!')", value.replace("''", "")):
            at = text.find(value)
            line = text[:at].count("\n") + 1 if at >= 0 else 1
            catalog.problems.append((rel, line, f"{entry['name']}.{column.get('name')}: accepted value `{value}` holds "
                                               f"a `'`: dbt pastes it into SQL as written and the build fails; write it "
                                               f"doubled, `{value.replace(chr(39), chr(39) * 2)}` (it still means "
                                               f"`{value}`)"))


def sources_of(doc: object) -> list[tuple[int, dict, list[tuple[int, dict]]]]:
    """The source entries of a dbt YAML document that are mappings, each with its index
    and its tables that are mappings (with theirs); anything else is dbt's to report."""
    sources = doc.get("sources") if isinstance(doc, dict) else None
    out = []
    for i, source in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(source, dict):
            tables = source.get("tables") if isinstance(source.get("tables"), list) else []
            out.append((i, source, [(j, t) for j, t in enumerate(tables) if isinstance(t, dict)]))
    return out


def _check_freshness(catalog: Catalog, rel: str, path: Path, text: str, doc: dict) -> None:
    """A `warn_after` / `error_after` that the alerts cannot read (`period: hours`, a
    count of 0 or of 10^11 days) turned its freshness alert off unsaid: each is reported
    at its own line, once (a source's, inherited by its tables, at the source's)."""
    found = []
    for i, source, tables in sources_of(doc):
        nodes = [(("sources", i), source, f"source {source.get('name')}")]
        nodes += [(("sources", i, "tables", j), table, f"source {source.get('name')}.{table.get('name')}")
                  for j, table in tables]
        for loc, node, what in nodes:
            freshness = freshness_config(node).get("freshness")
            if not isinstance(freshness, dict):
                continue
            base = loc + (("config",) if isinstance(node.get("config"), dict) and "freshness" in node["config"] else ())
            merged = table_freshness(source, node) if node is not source else None
            inherited = freshness_config(source).get("freshness")
            for key in THRESHOLDS:
                why = block_problem(freshness.get(key))
                # as merged with its source's (a count past ten years once merged), unless
                # the source's own is wrong: that is said once, at the source
                if not why and merged is not None and key in freshness and \
                        not (isinstance(inherited, dict) and block_problem(inherited.get(key))):
                    why = next((w for k, w in merged.problems if k == key and "Jinja" not in w), None)
                if why:
                    found.append((base + ("freshness", key), f"{what}: freshness {key}: {why} (that threshold is "
                                                            "not checked until this is fixed)"))
    if not found:
        return
    try:  # the lines, read only when there is something to say
        from ..spec.yaml_lines import load_located
        line_of = load_located(path, text).line_of
    except Exception:  # noqa: BLE001 - dbt reads YAML the metric files' reader refuses: no lines then
        def line_of(loc) -> int:
            return 1
    catalog.problems.extend((rel, line_of(loc), message) for loc, message in found)

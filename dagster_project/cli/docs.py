"""`metrics docs`: write the static HTML catalog (works offline: no CDN)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def add_parser(sub, with_target, date_type) -> None:
    sp = sub.add_parser("docs", help="write a static HTML catalog of the metrics (index, one page per metric)")
    sp.add_argument("--out", type=Path, help="output folder (default: dbt_project/target/metrics_catalog)")
    sp.add_argument("--dagster-url", default=os.environ.get("DAGSTER_URL", "http://127.0.0.1:3000"),
                    help="the Dagster UI the asset links point at (default: $DAGSTER_URL or http://127.0.0.1:3000)")
    with_target(sp)
    sp.set_defaults(func=cmd_docs)


def cmd_docs(args, paths) -> int:
    from ..catalog.build import build_catalog
    from ..validation.project import load_project
    t0 = time.perf_counter()
    from ..alerting.destinations import web_url_problem
    problem = web_url_problem(args.dagster_url)
    if problem:  # it becomes every page's links
        print(f"error: --dagster-url (or $DAGSTER_URL) {problem}, got `{args.dagster_url}`", file=sys.stderr)
        return 2
    args.dagster_url = args.dagster_url.strip()
    result = load_project(paths)
    for issue in result.issues:
        print(issue, file=sys.stderr)
    if result.issues:
        print(f"error: {len(result.issues)} problem(s): no catalog written", file=sys.stderr)
        return 1
    out = (args.out or paths.dbt_project_dir / "target" / "metrics_catalog").resolve()
    try:  # a file in the way, a folder that cannot be made: said before any work
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(0, "a file, not a folder")
        # its own earlier catalog is rewritten; anyone else's index.html (dbt docs' own) is not
        if out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()) and not _ours(out):
            print(f"error: --out {out}: the folder holds other files (no catalog this command wrote): give a new "
                  "or empty folder", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: --out {out}: cannot write the catalog there ({err.strerror or err})", file=sys.stderr)
        return 2
    try:
        built = build_catalog(paths, result.project, out, args.target, args.dagster_url)
    except OSError as err:  # a full disk, a page path that is a folder ...
        print(f"error: writing the catalog under {out}: {err.strerror or err} ({err.filename or out})", file=sys.stderr)
        return 1
    for w in built.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {len(built.pages)} pages ({built.built} of {len(built.pages) - 1} metrics with numbers) to {out} "
          f"({time.perf_counter() - t0:.1f}s)")
    print(f"open: file://{out / 'index.html'}")
    return 0


def _ours(out: Path) -> bool:
    """Whether `out` holds a catalog this command wrote: its catalog.json, a list of
    metrics with their pages `metric/<name>.html` (dbt docs writes a catalog.json too: a
    mapping); an empty one (no public metric) beside an index.html it wrote."""
    import json
    import re
    try:
        data = json.loads(_small_text(out / "catalog.json") or "null")
    except ValueError:
        return False
    if not isinstance(data, list):
        return False
    if not data:  # and its index.html says it wrote it
        from ..catalog.build import GENERATOR
        return GENERATOR in (_small_text(out / "index.html") or "")
    return all(isinstance(m, dict) and isinstance(m.get("page"), str) and re.fullmatch(r"metric/[^/]+\.html", m["page"])
               for m in data)


def _small_text(path: Path) -> str | None:
    """A regular file's text, when it is of a sane size (not a FIFO, not /dev/zero)."""
    try:
        if not path.is_file() or path.stat().st_size > 64 * 1024 * 1024:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None

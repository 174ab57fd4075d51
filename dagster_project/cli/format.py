"""How `metrics series` prints a series: JSON, CSV (one column per field) or an aligned
table (one number format per column, NULL shown as `NULL`, the bucket in progress marked)."""
from __future__ import annotations

import csv
import json
import math
from typing import TextIO

NULL = "NULL"  # a gap (no value), as opposed to 0; README "Commands" documents it
PARTIAL = "(partial)"  # change % of a bucket still in progress: not a real drop or rise
CSV_COLUMNS = ["metric", "grain", "bucket_start", "dimension", "dimension_value", "value", "previous_value",
               "change_pct", "complete"]


def series_rows(records: list[dict]) -> list[dict]:
    """The records of warehouse.read.series_records, JSON-ready."""
    from ..warehouse.read import _num
    out = []
    for r in records:
        dimension, value = next(iter(r["slice"].items())) if r["slice"] else ("", "")
        out.append({
            "metric": r["metric"], "grain": r["grain"], "bucket_start": r["bucket_start"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "slice": r["slice"], "dimension": dimension, "dimension_value": str(value),
            "value": _num(r["value"]), "previous_value": _num(r["previous_value"]), "change_pct": _num(r["change_pct"]),
            "complete": bool(r["complete"]),
        })
    return out


def write_json(rows: list[dict], out: TextIO) -> None:
    out.write(json.dumps(rows, indent=1) + "\n")


def write_csv(rows: list[dict], out: TextIO) -> None:
    """NULL is an empty cell (the CSV convention pandas and spreadsheets read as missing);
    a text that reads as a formula starts with `'` (csv_cell)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else ("true" if r[c] else "false") if c == "complete" else csv_cell(r[c])
                    for c in CSV_COLUMNS])


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v):
    """A text cell a spreadsheet would run as a formula (a slice value `=HYPERLINK(...)`
    from the raw data) starts with `'`; numbers, and texts that are numbers, stay; a whole
    number is written without a trailing ".0", so counts read as integers."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    if isinstance(v, str) and v.startswith(_FORMULA):
        try:
            float(v)
        except ValueError:
            return "'" + v
    return v


def decimals(values) -> int:
    """Decimals one column needs: 0 when every value is a whole number, else as many as
    the most precise value needs, at most 4."""
    need = 0
    for v in values:
        if v is None or math.isnan(v) or math.isinf(v):
            continue
        d = 0
        while d < 4 and abs(round(v, d) - v) > 1e-9 * max(1.0, abs(v)):
            d += 1
        need = max(need, d)
    return need


def write_table(rows: list[dict], out: TextIO) -> None:
    columns = [("value", "value"), ("previous_value", "previous"), ("change_pct", "change %")]
    # a partial bucket's change is not shown, so it does not set the column's format either
    shown = {key: [r[key] for r in rows if not (key == "change_pct" and not r["complete"])] for key, _ in columns}
    places = {key: decimals(values) for key, values in shown.items()}

    def cell(r: dict, key: str) -> str:
        if key == "change_pct" and not r["complete"]:
            return PARTIAL
        v = r[key]
        return NULL if v is None else f"{v:,.{places[key]}f}"

    body = [[r["bucket_start"] + ("*" if not r["complete"] else " ")] + [cell(r, k) for k, _ in columns] for r in rows]
    header = ["bucket_start"] + [title for _, title in columns]
    widths = [max([len(header[i])] + [len(line[i]) for line in body]) for i in range(len(header))]
    out.write(f"{header[0]:<{widths[0]}}" + "".join(f"  {h:>{w}}" for h, w in zip(header[1:], widths[1:])) + "\n")
    for line in body:
        out.write(f"{line[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(line[1:], widths[1:])) + "\n")
    if any(not r["complete"] for r in rows):
        out.write("* bucket in progress: not complete\n")

"""The markdown table every benchmark prints: columns as wide as their widest cell."""
from __future__ import annotations


def print_table(header: list[str], rows: list[tuple], right: tuple[str, ...] = ("ratio",)) -> None:
    """`right`: the columns aligned right (numbers)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if h in right else v.ljust(w)
                                 for v, w, h in zip(values, widths, header)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(line(row))

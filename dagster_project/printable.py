"""Text from users' files and data shown on one line (a path, a dimension value)."""
from __future__ import annotations


def one_line(text: str) -> str:
    """`text` on one line: a character that does not print (a line break in a raw
    dimension value or a folder name) as its escape, `\\n`."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)

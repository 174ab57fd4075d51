"""Text from users' files and data shown on one line (a path, a dimension value)."""
from __future__ import annotations


def one_line(text: str) -> str:
    """`text` on one line: a character that does not print (a line break in a raw
    dimension value or a folder name) as its escape, `\\n`."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def as_typed(value: str, known) -> str:
    """The known value a user meant by `value`: itself, or the one whose `one_line` form it
    is (a value with a line break is listed, and typed, as `new\\nline`)."""
    if value in known or "\\" not in value:
        return value
    shown = [k for k in known if one_line(k) == value]
    return shown[0] if len(shown) == 1 else value


def slice_text(dimension: str, value: str) -> str:
    """A slice as listings show it: `total`, `country=DE`, `country=""` (an empty value,
    not the total), `country=new\\nline`."""
    if not dimension:
        return "total"
    return one_line(dimension) + "=" + ('""' if value == "" else one_line(value))

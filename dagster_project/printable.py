"""Text from users' files and data shown on one line (a path, a dimension value)."""
from __future__ import annotations


def one_line(text: str) -> str:
    """`text` on one line: a character that does not print (a line break in a raw
    dimension value or a folder name) as its escape, `\\n`."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def listed(value: str) -> str:
    """A value as a listing joined with ", " shows it: in double quotes when it holds a
    comma, starts with a quote, is empty or padded with spaces, or is `none` (it would
    read as two values, or as no value); a line break or an escape code stays on the line."""
    text = one_line(value)
    if "," in text or text.startswith(('"', "...")) or text != text.strip() or text in ("", "none"):
        return '"' + text.replace('"', '\\"') + '"'  # one_line already escaped the rest
    return text


def slice_text(dimension: str, value: str) -> str:
    """A slice as listings show it: `total`, `country=DE`, `country=""` (an empty value,
    not the total), `country=" US"`, `country=new\\nline`."""
    return "total" if not dimension else f"{one_line(dimension)}={listed(value)}"


def as_typed(value: str, known) -> str:
    """The known value a user meant by `value`: itself, or the one shown as `value` in a
    listing (`""` for the empty value, `new\\nline` for a line break), when just one is."""
    if value in known:
        return value
    shown = [k for k in known if value in (listed(k), one_line(k))]
    return shown[0] if len(shown) == 1 else value

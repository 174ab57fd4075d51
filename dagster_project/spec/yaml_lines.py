"""YAML loading that remembers the line of every key and list item, so an error can
point at `metrics/growth/x.yml:7` instead of at the file."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class YamlSyntaxError(Exception):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


@dataclass
class LocatedYaml:
    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    # (line, message) of each key written twice (the first value is kept) and of each value
    # YAML reads but Python refuses (2026-02-30: its text is kept): the rest of the file is
    # still checked, so one run reports every problem
    problems: list[tuple[int, str]] = field(default_factory=list)
    # where such a refused value's text was kept: a schema error there says it again
    refused: set[Loc] = field(default_factory=set)
    # the refused nodes, by id: an alias of one (`*d`) is reported once, at its anchor
    refused_nodes: set[int] = field(default_factory=set, repr=False)

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest located parent (1 for the file)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


class _Constructor(yaml.SafeLoader):
    pass


# A metric file is a few dozen values, alerts.yml some thousands (a silence is five);
# aliases can make a tiny file expand to millions (or to itself): past these, it is
# refused rather than expanded
MAX_VALUES = 200_000
MAX_DEPTH = 50


def _convert(node: yaml.Node, loader: yaml.SafeLoader, loc: Loc, lines: dict[Loc, int], path: Path,
             found: LocatedYaml) -> Any:
    if len(loc) > MAX_DEPTH:
        raise YamlSyntaxError(path, node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep "
                              "(an alias that contains itself?)")
    if len(lines) >= MAX_VALUES:
        raise YamlSyntaxError(path, node.start_mark.line + 1, f"more than {MAX_VALUES:,} values (a huge file, or "
                              "aliases that expand a small one)")
    lines.setdefault(loc, node.start_mark.line + 1)
    _plain_tag(node, path)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `[1]: x`, `? {a: 1}`
                raise YamlSyntaxError(path, key_node.start_mark.line + 1, "mapping keys must be plain words")
            try:
                key = _scalar(key_node, loader, path)
            except _Refused as err:  # a key (`2026-02-30: x`) names what follows: nothing to check without it
                raise YamlSyntaxError(path, key_node.start_mark.line + 1, str(err)) from None
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise YamlSyntaxError(path, key_node.start_mark.line + 1, "mapping keys must be plain words")
            key_loc = (*loc, key)
            if key in out:
                found.problems.append((key_node.start_mark.line + 1,
                                       f"key '{key}' appears twice (first on line {lines[key_loc]}): remove one"))
                continue
            lines[key_loc] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, loader, key_loc, lines, path, found)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, loader, (*loc, i), lines, path, found) for i, item in enumerate(node.value)]
    try:
        return _scalar(node, loader, path)
    except _Refused as err:  # reported, and its text kept in its place
        if id(node) not in found.refused_nodes:
            found.refused_nodes.add(id(node))
            found.problems.append((node.start_mark.line + 1, str(err)))
        found.refused.add(loc)
        return node.value


_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_EXPONENT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")}


def _plain_tag(node: yaml.Node, path: Path) -> None:
    """Only YAML's plain types: `!!binary` would carry text no check reads (its bytes
    decode to anything, `{{ ... }}` included), `!!set`, `!!python/...` or a custom tag a
    type the spec has no use for."""
    if node.tag in _PLAIN_TAGS:
        return
    line = node.start_mark.line + 1
    if node.tag == "tag:yaml.org,2002:merge":
        raise YamlSyntaxError(path, line, "YAML merge keys (`<<`) are not supported: write the keys out")
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise YamlSyntaxError(path, line, f"the tag `{tag}` is not supported: write a plain value (text, a number, "
                                      "true/false, a date, a list or a mapping)")


class _Refused(ValueError):
    """A value YAML reads but Python refuses (2026-02-30)."""


def _scalar(node: yaml.Node, loader: yaml.SafeLoader, path: Path) -> Any:
    _plain_tag(node, path)
    # YAML reads 2026-02-30 as a date and Python refuses it: a user's typo, not a crash
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as err:
        # PyYAML keeps a node that failed as "under construction": an alias of it (`*d`)
        # would read as a recursive node
        loader.recursive_objects.pop(node, None)
        reason = "too large a number" if "digits" in str(err) else str(err)
        raise _Refused(f"invalid value `{shown}`: {reason}") from None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        # (`0xfff...`: past 4,300 digits Python cannot even print it)
        raise _Refused(f"invalid value `{shown}`: too large a number")
    # YAML 1.1 reads `010` as octal (8) and `1:30` as base 60 (90); YAML 1.2 and every
    # reader of a number mean 10 and a text: refused rather than taken as something else
    if node.style is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and _OCTAL.fullmatch(node.value) and value != 0:
            raise _Refused(f"`{node.value}` reads as {value} in YAML 1.1 (a leading 0 makes it octal): write "
                           "the number without its leading zeros, or quote it for a text")
        if ":" in node.value:
            raise _Refused(f"`{node.value}` reads as {value:g} in YAML 1.1 (base 60): write the number you mean, or "
                           "quote it for a text")
    # YAML 1.1 reads `1e3` and `1.5e3` (no dot, or no exponent sign) as text; 1.2 and every
    # reader of the file mean a number: a plain (unquoted) one is a float here too
    if isinstance(value, str) and node.style is None and _EXPONENT.fullmatch(value):
        return float(value)
    # an escape (`"\0"`, `"\e"`) puts in a value the control characters the reader refuses
    bad = _CONTROL.search(value) if isinstance(value, str) else None
    if bad:
        raise YamlSyntaxError(path, node.start_mark.line + 1,
                              f"control character U+{ord(bad.group()):04X} is not allowed in a value: remove it")
    # `"\ud800"` is half of a UTF-16 pair, no character: no UTF-8 file (dbt's YAML, a page) can hold it
    half = _SURROGATE.search(value) if isinstance(value, str) else None
    if half:
        raise YamlSyntaxError(path, node.start_mark.line + 1,
                              f"the escape \\u{ord(half.group()):04x} is half of a UTF-16 pair, not a character: "
                              "write the character itself")
    return value


def read_utf8(path: Path) -> str:
    """The file's text; a file that is not UTF-8 (saved as Latin-1, say) is a
    YamlSyntaxError at the line of its first bad byte, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise YamlSyntaxError(path, line, f"not UTF-8 text (byte 0x{data[err.start]:02x}): save the file as "
                                          f"UTF-8") from None


def load_located(path: Path, text: str | None = None) -> LocatedYaml:
    """Parse one YAML document, keeping line numbers. Raises YamlSyntaxError."""
    if text is None:
        text = read_utf8(path)
    if "\r" in text and "\n" not in text:  # a file saved with classic Mac line ends: lines to YAML and editors alike
        text = text.replace("\r", "\n")
    # YAML reads these as line breaks, editors and `git diff` do not: a key after one in a
    # comment was hidden from review (and every line number after it was off by one)
    odd = re.search("[\x85\u2028\u2029]|\r(?!\n)", text)
    if odd:
        line = text[:odd.start()].count("\n") + 1
        raise YamlSyntaxError(path, line, f"line break U+{ord(odd.group()):04X} is not allowed: YAML ends a line "
                                          "there, editors do not (use a plain new line)")
    try:
        loader = _Constructor(text)
    except yaml.reader.ReaderError as err:  # a control character (NUL, BEL, ESC ...), even in a comment
        line = text[:err.position].count("\n") + 1
        raise YamlSyntaxError(path, line, f"control character U+{err.character:04X} is not allowed in YAML: "
                                          "remove it") from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(path, line, f"invalid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(path, 1, f"invalid YAML: {err}") from None
    except RecursionError:  # the YAML reader recurses per level
        raise YamlSyntaxError(path, 1, f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is None:
        return LocatedYaml(path, None, {(): 1})
    loader = _Constructor("")
    found = LocatedYaml(path, None, lines)
    try:
        found.data = _convert(node, loader, (), lines, path, found)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        raise YamlSyntaxError(path, (mark.line + 1) if mark else 1, f"invalid YAML: {err.problem}") from None
    return found

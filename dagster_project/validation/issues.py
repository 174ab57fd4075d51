"""The one shape every validation problem takes."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable

from ..printable import one_line


@dataclass(frozen=True, order=True)
class ValidationIssue:
    file: str
    line: int
    message: str
    rule: str = ""

    def __str__(self) -> str:
        # a path with a line break (a hostile folder name) is still one line
        return f"{one_line(self.file)}:{self.line}: {self.message}"


def closest(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean `x`?)' or '' — appended to unknown-name messages."""
    from ..printable import one_line  # a stored value may hold a line break
    candidates = list(candidates)
    # `ORDERS` for `orders`: the same name in another case first
    match = [c for c in candidates if c.lower() == word.lower()][:1] \
        or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean `{one_line(match[0])}`?)" if match else ""

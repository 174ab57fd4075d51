"""Resolve `${NAME}` references of `alerts.yml` at send time (`$$` is a literal `$`).

Resolved values are secrets (a Slack webhook URL is one): they are returned to the caller
and nothing else; errors name the variable, never a value."""
from __future__ import annotations

import os
from typing import Iterable, Mapping

from .config import _REFERENCE


class MissingSecret(ValueError):
    """An environment variable referenced by `alerts.yml` is unset or empty."""

    def __init__(self, name: str):
        super().__init__(f"environment variable {name} is not set")
        self.name = name


def resolve(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with each `${NAME}` replaced by its value in `env` (default: os.environ)."""
    env = os.environ if env is None else env

    def substitute(m) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name is None:
            raise ValueError("a `$` must start an environment reference `${NAME}` (write `$$` for a literal `$`)")
        value = env.get(name)
        if not value:  # an empty secret is as useless as a missing one, and safer to report
            raise MissingSecret(name)
        return value

    return _REFERENCE.sub(substitute, text)


def redact(message: str, values: Iterable[str | None]) -> str:
    """`message` with every resolved value masked: library errors may quote a URL or a
    header, and those can hold secrets. Short values are left alone (they would mask
    ordinary words, and are not worth guessing)."""
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        message = message.replace(value, "***")
    return message

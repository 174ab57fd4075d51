"""Where alerts may go, checked when alerts.yml is read and again when a `${VAR}` part is
resolved at send time: URLs, link bases, header names and values, email addresses, log
paths. Each check says why a value is refused, without quoting a URL (it may be secret)."""
from __future__ import annotations

import re

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
LINE_BREAK = re.compile(r"[\x00-\x1f\x7f]")
ADDRESS = re.compile(r"[^\s@<>,;]+@[^\s@<>,;]+")
SECRET_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def web_url_problem(url: str) -> str | None:
    """Why a link base (`dagster_url`, `--dagster-url`) is refused: it becomes the links of
    every message and page (`javascript:` would run there; `|` and `>` end a Slack link)."""
    if not re.fullmatch(r"https?://[^\s<>|\"'`]+", url.strip()):
        return "must be an http:// or https:// URL, without spaces, quotes, <, > or |"
    return None


def url_problem(url: str, resolved: bool = False) -> str | None:
    """Why a webhook URL cannot be sent to, or None; a part written as `${VAR}` is checked
    when resolved (secrets.py), at send time (`resolved`: a Slack URL is then allowed, it
    came from the environment). The URL is never quoted back: it may be secret."""
    from urllib.parse import urlsplit
    if LINE_BREAK.search(url):
        return "the URL holds a line break or control character"
    if url.strip().startswith("${"):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "an alert URL starts with http:// or https://"
    if "@" in parts.netloc:
        return ("a URL cannot carry a user and password (they are not sent, and alerts.yml is no place for them): "
                "send them in a header, e.g. `Authorization: Basic ${WEBHOOK_AUTH}`")
    if "hooks.slack.com" in parts.netloc.lower() and "${" not in url and not resolved:
        return "a Slack webhook URL is a secret: write it as an environment reference like ${SLACK_WEBHOOK_URL}"
    return None


def path_inside_project(text: str) -> bool:
    from pathlib import PurePath
    p = PurePath(text)
    return bool(text.strip()) and not p.is_absolute() and ".." not in p.parts


# what a log channel may not append to: the project's inputs and the warehouse
# (`path: alerts.yml` appended JSON to alerts.yml, and alerting turned itself off)
_PROJECT_FOLDERS = {"metrics", "models", "macros", "seeds", "dbt_project", "dagster_project", ".git", ".ci", ".venv"}
_PROJECT_SUFFIXES = {".yml", ".yaml", ".sql", ".py", ".toml", ".duckdb", ".chdb", ".csv", ".md", ".cfg", ".ini",
                     ".html", ".lock", ".wal"}


def log_path_problem(text: str) -> str | None:
    """Why a log channel's path is refused, or None."""
    from pathlib import PurePath
    if not path_inside_project(text):
        return "must stay inside the project: a path relative to the project root, without `..`"
    p = PurePath(text)
    if (not p.parts or p.parts[0].lower() in _PROJECT_FOLDERS or p.name in ("", ".") or text.rstrip().endswith("/")
            or p.suffix.lower() in _PROJECT_SUFFIXES or p.name.lower() in ("alerts.yml", "workspace.yaml")):
        return (f"`{text}` would write into the project's own files or folders: name a log file such as "
                "warehouse/alerts.log")
    return None

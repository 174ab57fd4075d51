"""Read and validate `alerts.yml` like a metric file: every problem at its file:line, all
of them at once. `${VAR}` references are checked for syntax only (a PR check has no
secrets); they are resolved at send time."""
from __future__ import annotations

import re

from pydantic import ValidationError

from ..paths import ProjectPaths
from ..spec.yaml_lines import LocatedYaml, YamlSyntaxError, load_located
from ..validation.issues import ValidationIssue, closest
from ..validation.pydantic_issues import pydantic_issues
from .config import ALERTS_FILE, AlertsConfig


def alerts_path(paths: ProjectPaths):
    return paths.root / ALERTS_FILE


def load_alerts(paths: ProjectPaths, text: str | None = None) -> tuple[AlertsConfig, list[ValidationIssue]]:
    """The configuration and its problems; on any problem an empty configuration. `text`
    validates a proposed content instead of the file (`metrics silence add`)."""
    path = alerts_path(paths)
    if text is None and not path.exists():
        return AlertsConfig(), []
    rel = ALERTS_FILE
    try:
        located = load_located(path, text)
    except YamlSyntaxError as err:
        return AlertsConfig(), [ValidationIssue(rel, err.line, err.message, "yaml")]
    if located.data is None:
        return AlertsConfig(), []
    if not isinstance(located.data, dict):
        return AlertsConfig(), [ValidationIssue(rel, 1, "alerts.yml is a mapping of fields (channels:, routes:, ...)", "yaml")]
    problems = [ValidationIssue(rel, line, message, "yaml") for line, message in located.problems]
    # the cross checks read the written data: reported with the field errors, in one run
    cross = _cross_issues(rel, located, located.data)
    try:
        config = AlertsConfig.model_validate(located.data, context={"names_checked": True})
    except ValidationError as err:
        found = pydantic_issues(rel, located, err, AlertsConfig)
        return AlertsConfig(), problems + sorted(set(found) | set(cross), key=lambda i: (i.line, i.message))
    issues = problems + cross
    return (AlertsConfig(), issues) if issues else (config, [])


def _cross_issues(rel: str, located: LocatedYaml, data: dict) -> list[ValidationIssue]:
    """What one model cannot see: channel names used by routes, route names; read from the
    written data, so a field error elsewhere does not hide them."""
    out: list[ValidationIssue] = []

    def issue(loc, message: str, rule: str) -> None:
        out.append(ValidationIssue(rel, located.line_of(loc), message, rule))

    channels = data.get("channels") if isinstance(data.get("channels"), dict) else {}
    for name in channels:
        if not re.match(r"^[A-Za-z0-9_.-]+$", str(name)):  # at the name's own line
            issue(("channels", name), f"`channels`: channel name `{name}` may hold only letters, digits, `_`, `.` "
                  "and `-`", "alerts")
    written = data.get("routes") if isinstance(data.get("routes"), list) else []
    routes = [(("routes", i), r) for i, r in enumerate(written) if isinstance(r, dict)]
    if isinstance(data.get("default_route"), dict):
        routes.append((("default_route",), data["default_route"]))
    for loc, route in routes:
        used = route.get("channels") if isinstance(route.get("channels"), list) else []
        for j, name in enumerate(used):
            if isinstance(name, str) and channels and name not in channels:
                known = ", ".join(map(str, channels))
                issue((*loc, "channels", j), f"`{_dotted(loc)}.channels[{j}]`: unknown channel `{name}`"
                      f"{closest(name, [str(c) for c in channels])} (channels: {known})", "alerts")
            elif isinstance(name, str) and not channels:
                issue((*loc, "channels", j), f"`{_dotted(loc)}.channels[{j}]`: unknown channel `{name}` "
                      "(channels: none defined)", "alerts")
    seen: dict[str, int] = {}
    for i, route in enumerate(written):
        name = route.get("name") if isinstance(route, dict) else None
        if not isinstance(name, str):
            continue
        line = located.line_of(("routes", i, "name"))
        if name in seen:
            issue(("routes", i, "name"), f"route `{name}` is already defined at line {seen[name]}", "alerts")
        seen.setdefault(name, line)
        if name == "default" and data.get("default_route") is not None:
            issue(("routes", i, "name"), "route name `default` is taken by `default_route:`: rename this route", "alerts")
    return out


def _dotted(loc) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def route_names(config: AlertsConfig) -> list[str]:
    return [r.name for r in config.routes] + (["default"] if config.default_route is not None else [])


def route_issues(paths: ProjectPaths, config: AlertsConfig, spec_files) -> list[ValidationIssue]:
    """A metric's `alerts: [route]` must name a route of alerts.yml. Without an alerts.yml
    alerting is not set up and there is nothing to check the names against."""
    if not alerts_path(paths).exists():
        return []
    names = route_names(config)
    out = []
    for f in spec_files:
        for i, name in enumerate(f.spec.alerts):
            if name not in names:
                out.append(f.issue(("alerts", i), f"alerts[{i}]: unknown route `{name}`{closest(name, names)} "
                                   f"(routes in {ALERTS_FILE}: {', '.join(names) or 'none'})", "alerts"))
    return out

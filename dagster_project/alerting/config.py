"""`alerts.yml` at the project root: channels, routes, silences (DESIGN.md, Alerting).
Frozen pydantic models with `extra="forbid"`, like metric files; secrets appear only as
`${ENV_VAR}` references, checked here for syntax and resolved at send time (secrets.py)."""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
from email.utils import parseaddr
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..grains import GRAINS

from .destinations import ADDRESS, HEADER_NAME, LINE_BREAK, SECRET_REF, log_path_problem, url_problem, web_url_problem
from .names import ALERTS_FILE, MATCH_KEYS

KINDS = ("anomaly", "freshness", "run_failure")
SEVERITIES = ("warning", "critical")
GROUP_KEYS = ("metric", "grain", "slice", "domain", "owner", "kind", "severity", "source")

_DURATION = re.compile(r"^\s*(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")
# a `$` must start a well-formed reference; `$$` writes a literal dollar sign
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$")


# far beyond any sensible wait, and far from a datetime's range (now - 200,000 weeks is not a date)
MAX_DURATION = dt.timedelta(days=10 * 365)


def parse_duration(value: object) -> dt.timedelta:
    """`30s`, `15m`, `4h`, `2d`, `1w`, `1h30m`; a bare number only 0 (`repeat_interval: 4`
    meant 4 seconds, not 4 hours)."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == 0:
            return dt.timedelta(0)
        if value < 0:
            raise ValueError("a duration cannot be negative")
        raise ValueError(f"a duration needs its unit: write e.g. {value:g}s, {value:g}m or {value:g}h, got {value!r}")
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and any(m.groups()):
            w, d, h, mi, s = (int(g or 0) for g in m.groups())
            seconds = ((((w * 7 + d) * 24 + h) * 60) + mi) * 60 + s
            if seconds > MAX_DURATION.total_seconds():
                raise ValueError(f"a duration of at most {MAX_DURATION.days // 365} years, got {value!r}")
            return dt.timedelta(seconds=seconds)
    raise ValueError(f"not a duration (write e.g. 30s, 15m, 4h, 2d, 1w), got {value!r}")


Duration = Annotated[dt.timedelta, Field(json_schema_extra={"type": "string", "pattern": _DURATION.pattern})]


def env_references(text: str) -> list[str]:
    """The variable names `${NAME}` in `text`; ValueError on a malformed `$`."""
    names = []
    for m in _REFERENCE.finditer(text):
        if m.group(0) == "$$":
            continue
        if m.group(1) is None:
            raise ValueError("a `$` must start an environment reference `${NAME}` (write `$$` for a literal `$`)")
        names.append(m.group(1))
    return names


class _Frozen(BaseModel):
    # strict: `starttls: "no"` or `resolve_after: true` is a mistake, not a value (int still fits a float)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _Durations(_Frozen):
    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: object, info) -> object:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation in (dt.timedelta, dt.timedelta | None) and value is not None:
            return parse_duration(value)
        return value


class _Channel(_Frozen):
    # per field, so an error's location (file:line) is the field holding the bad `$`
    @field_validator("*")
    @classmethod
    def _references(cls, value: object) -> object:
        texts = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for text in texts:
            if isinstance(text, str):
                env_references(text)
        return value


_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-auth-token", "cookie"}
def _reference_only(value: str | None, field: str) -> str | None:
    """A secret is written as a `${ENV_VAR}` reference, never as the secret itself."""
    if value is not None and not SECRET_REF.fullmatch(value.strip()):
        raise ValueError(f"`{field}` must be an environment reference like ${{ALERT_WEBHOOK_SECRET}}: "
                         "secrets are never written in alerts.yml")
    return value


def _valid_url(value: str) -> str:
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: str = Field(description="Incoming-webhook URL, usually `${SLACK_WEBHOOK_URL}`.")
    timeout_seconds: float = Field(10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        # a Slack incoming-webhook URL is its own credential: whoever reads it can post (url_problem)
        return _valid_url(value)


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str
    secret: str | None = Field(None, description="HMAC-SHA256 key as a `${ENV_VAR}` reference: the body's signature goes in `X-Signature-256`.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(10, gt=0, le=300)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return _reference_only(value, "secret")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _valid_url(value)

    @field_validator("headers")
    @classmethod
    def _credential_headers(cls, value: dict[str, str]) -> dict[str, str]:
        # a line break would end the header (every send failed, retried without end)
        for name, text in value.items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name `{name.encode('unicode_escape').decode()}` may hold only letters, "
                                 "digits and !#$%&'*+.^_`|~- (no spaces)")
            if LINE_BREAK.search(text):
                raise ValueError(f"header `{name}`: its value holds a line break or control character")
        # credentials travel in these headers: a reference, never the value itself
        for name, text in value.items():
            if name.lower() in _CREDENTIAL_HEADERS and "${" not in text:
                raise ValueError(f"header `{name}` carries a credential: write it with an environment reference "
                                 f"like `Bearer ${{API_TOKEN}}`, never in alerts.yml")
        return value


class EmailChannel(_Channel):
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str = Field("metrics@localhost", alias="from")
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return _reference_only(value, "password")

    @field_validator("to", "sender")
    @classmethod
    def _addresses(cls, value: list[str] | str) -> list[str] | str:
        # a line break in an address would add a header (Python refused every message)
        for address in value if isinstance(value, list) else [value]:
            if LINE_BREAK.search(address):
                raise ValueError("an address holds a line break or control character")
            if not (ADDRESS.fullmatch(parseaddr(address)[1]) or SECRET_REF.fullmatch(address.strip())):
                raise ValueError(f"`{address}` is not an email address (name@domain or `Name <name@domain>`, or a "
                                 "${VAR} reference)")
        return value

    @field_validator("smtp_host", "username")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        if value is not None and (LINE_BREAK.search(value) or not value.strip() or " " in value.strip()):
            raise ValueError("must be one word, without spaces or line breaks")
        return value
    starttls: bool = False
    timeout_seconds: float = Field(10, gt=0, le=300)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)


class LogChannel(_Channel):
    type: Literal["log"]
    path: str = Field(description="JSON lines file, relative to the project root.")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        # alerts.yml is reviewed as project configuration: it writes under the project only
        # (a `${VAR}` path is checked when it is resolved, at send time)
        if "${" not in value:
            problem = log_path_problem(value)
            if problem:
                raise ValueError(problem)
        return value


Channel = Annotated[Union[SlackChannel, WebhookChannel, EmailChannel, LogChannel], Field(discriminator="type")]


def never_matching(key: str, value: str | list[str] | None) -> str | None:
    """Why a match key's value can never fit, or None: an empty list, or a grain,
    severity or kind (labels of a few values only) that fits none of theirs."""
    if value == []:
        return "an empty list matches nothing"
    known = {"grain": GRAINS, "severity": SEVERITIES, "kind": KINDS}.get(key)
    for want in [] if value is None or known is None else value if isinstance(value, list) else [value]:
        if not any(fnmatch.fnmatchcase(k, want) for k in known):
            return f"`{want}` matches no {key} (one of: {', '.join(known)})"
    return None


class Match(_Frozen):
    """Every key given must match; a value may be a list (any of) and may use `*` globs."""

    metric: str | list[str] | None = None
    domain: str | list[str] | None = None
    owner: str | list[str] | None = None
    grain: str | list[str] | None = None
    severity: str | list[str] | None = None
    tag: str | list[str] | None = None
    kind: str | list[str] | None = None
    source: str | list[str] | None = None

    def never_matching(self) -> tuple[str, str] | None:
        """(key, why) for the first key that can never match, or None (never_matching)."""
        for key in MATCH_KEYS:
            why = never_matching(key, getattr(self, key))
            if why:
                return key, why
        return None

    def matches(self, labels: dict[str, object]) -> bool:
        for key in MATCH_KEYS:
            want = getattr(self, key)
            if want is None:
                continue
            wanted = want if isinstance(want, list) else [want]
            have = labels.get(key)
            values = [str(v) for v in have] if isinstance(have, (list, tuple, set, frozenset)) else [] if have is None else [str(have)]
            if not any(fnmatch.fnmatchcase(v, w) for v in values for w in wanted):
                return False
        return True


class RouteMatch(Match):
    """A route's match: a key that can never fit is an error at its line (a silence's may
    stay: it is harmless, and `metrics silence add` refuses one)."""

    @field_validator(*MATCH_KEYS)
    @classmethod
    def _can_match(cls, value: str | list[str] | None, info) -> str | list[str] | None:
        why = never_matching(info.field_name, value)
        if why:
            raise ValueError(why)
        return value


class Route(_Durations):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)
    group_by: list[Literal["metric", "grain", "slice", "domain", "owner", "kind", "severity", "source"]] = \
        Field(default_factory=lambda: ["metric"])
    group_wait: dt.timedelta = Field(dt.timedelta(seconds=30), description="Wait before a new group's first message, to batch.")
    repeat_interval: dt.timedelta = Field(dt.timedelta(hours=4), description="Resend a group that still fires at most this often.")
    open_within: dt.timedelta | None = Field(None, description="Override the top-level open_within for this route.")
    resolve_after: int = Field(1, ge=1, le=100, description="In-band buckets after the last detection that resolve an alert.")

    @field_validator("channels", "group_by")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        # a channel twice made two outbox rows with one key: every evaluation then failed
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"`{twice[0]}` is listed more than once")
        return value

    @field_validator("repeat_interval", "open_within")
    @classmethod
    def _positive(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        # 0s would resend a group on every evaluation, or open nothing at all
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be more than 0s")
        return value


def _without_name_and_match(schema: dict, _model) -> None:
    for key in ("name", "match"):
        schema.get("properties", {}).pop(key, None)
    if "required" in schema:
        schema["required"] = [k for k in schema["required"] if k not in ("name", "match")]


class DefaultRoute(Route):
    # the JSON Schema as the validator below: no `name`, no `match`
    model_config = ConfigDict(json_schema_extra=_without_name_and_match)
    name: str = "default"

    @model_validator(mode="after")
    def _no_name_or_match(self) -> "DefaultRoute":
        # it catches what no route matched, under the name `default`
        extra = sorted({"name", "match"} & self.model_fields_set)
        if extra:
            raise ValueError(f"default_route takes no {' or '.join(f'`{e}`' for e in extra)} "
                             "(it is named `default` and takes every alert no route matched)")
        return self


def utc_naive(value: dt.datetime) -> dt.datetime:
    """Naive UTC; OverflowError when the offset takes it past year 1 or 9999."""
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


class Silence(_Frozen):
    match: Match
    # a timestamp is text in YAML when quoted or written with a `Z`: parsed, not refused
    starts: dt.datetime = Field(strict=False)
    ends: dt.datetime = Field(strict=False)
    comment: str | None = None
    created_by: str | None = None

    @field_validator("starts", "ends", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # pydantic reads a bare number as Unix seconds: `20261224` was 1970-08-23, `1e10` 2286
        if isinstance(value, (int, float)) and not isinstance(value, bool) or \
                isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
            raise ValueError("is a timestamp (2026-12-24T00:00:00Z) or a date (2026-12-24), not a number")
        return value

    @field_validator("starts", "ends")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        try:
            return utc_naive(value)
        except OverflowError:
            raise ValueError("in UTC falls outside the years 1 to 9999") from None

    @model_validator(mode="after")
    def _ordered(self) -> "Silence":
        if all(getattr(self.match, key) is None for key in MATCH_KEYS):  # as `metrics silence add` refuses it
            raise ValueError("a silence's `match` names at least one key (an empty one silences every alert): "
                             f"one of {', '.join(MATCH_KEYS)}")
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self

    def active(self, now: dt.datetime) -> bool:
        return self.starts <= now < self.ends


class Retry(_Durations):
    first: dt.timedelta = Field(dt.timedelta(seconds=10), description="First retry after a failed delivery.")
    max: dt.timedelta = Field(dt.timedelta(hours=1), description="Cap of the doubling delay.")

    def delay(self, attempts: int) -> dt.timedelta:
        """Wait after the `attempts`-th failed attempt (1, 2, ...)."""
        wait = self.first
        for _ in range(max(attempts - 1, 0)):  # doubled up to the cap: 2**n of a day overflows a timedelta
            if wait >= self.max or not wait:
                break
            wait *= 2
        return min(wait, self.max)


class AlertsConfig(_Durations):
    dagster_url: str = "http://127.0.0.1:3000"

    @field_validator("dagster_url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        problem = web_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip()
    open_within: dt.timedelta | None = Field(
        None, description="A detection older than this never opens an alert (default per grain: two buckets plus the settle lookback).")

    @field_validator("open_within")
    @classmethod
    def _positive(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be more than 0s (a detection of any age would open nothing)")
        return value
    channels: dict[str, Channel] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    default_route: DefaultRoute | None = None
    silences: list[Silence] = Field(default_factory=list)
    retry: Retry = Field(default_factory=Retry)

    @field_validator("channels", "routes", "silences", mode="before")
    @classmethod
    def _empty(cls, value: object, info) -> object:
        # `silences:` with nothing under it is YAML null: an empty section, not an error
        return ({} if info.field_name == "channels" else []) if value is None else value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict, info) -> dict:
        if (info.context or {}).get("names_checked"):  # alerts.yml's check says it at the name's line (load.py)
            return value
        for name in value:
            if not re.match(r"^[A-Za-z0-9_.-]+$", str(name)):
                raise ValueError(f"channel name `{name}` may hold only letters, digits, `_`, `.` and `-`")
        return value

    def route(self, name: str) -> Route | None:
        if name == "default" and self.default_route is not None:
            return self.default_route
        return next((r for r in self.routes if r.name == name), None)

    def routes_for(self, labels: dict[str, object], named: tuple[str, ...] = ()) -> list[Route]:
        """A metric's own `alerts: [route]` list, else the first matching route, else the
        default route (none configured: nowhere)."""
        if named:
            return [r for r in (self.route(n) for n in named) if r is not None]
        first = next((r for r in self.routes if r.match.matches(labels)), None)
        if first is not None:
            return [first]
        return [self.default_route] if self.default_route is not None else []

    def silenced_by(self, labels: dict[str, object], now: dt.datetime) -> Silence | None:
        return next((s for s in self.silences if s.active(now) and s.match.matches(labels)), None)


BUCKET = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1),
          "month": dt.timedelta(days=31)}


def default_open_within(grain: str, settle_lookback: int) -> dt.timedelta:
    """Two buckets of the grain plus its settle lookback."""
    return BUCKET[grain] * (2 + settle_lookback)


assert set(BUCKET) == set(GRAINS)

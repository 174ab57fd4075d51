"""Human-readable alert messages (Slack, email, log text) from the payload that the engine
builds and the generic webhook posts as is. Every channel shows the same facts: metric and
slice, value vs expected band, how unusual, since when, owner, link, reason; pipeline
alerts (freshness, run failure) say loudly that the pipeline is broken, so they are never
read as a quiet metric."""
from __future__ import annotations

import re

import datetime as dt
import html
import math

HEADLINE = {  # (firing, resolved)
    "anomaly": ("Metric outside its expected band", "Metric back within its expected band"),
    "freshness": ("PIPELINE BROKEN: Source stopped delivering rows", "Source delivering rows again"),
    "run_failure": ("PIPELINE BROKEN: Pipeline run failed", "Pipeline run succeeded again"),
}


def number(x: object) -> str:
    """1,234 / 1,234.5 / 0.0421 (3 significant digits below 100); null -> "n/a"."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return "n/a" if x is None else str(x)
    if math.isnan(x) or math.isinf(x):
        return "n/a"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.1f}"
    return f"{x:.3g}"


def when(value: object) -> str | None:
    """ISO timestamp -> `2026-11-20 00:00 UTC`; anything unparsable is shown as given."""
    if value is None or value == "":
        return None
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    zone = " UTC" if t.tzinfo is not None and t.utcoffset() == dt.timedelta(0) else ""
    if t.tzinfo is not None and not zone:
        zone = t.strftime(" %z")
    return t.strftime("%Y-%m-%d %H:%M") + zone


def duration(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)):
        return str(value)
    seconds, parts = int(value), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def kind_of(payload: dict, alert: dict | None = None) -> str:
    kind = (alert or {}).get("kind") or payload.get("kind") or "anomaly"
    return kind if kind in HEADLINE else "anomaly"


def resolved(payload: dict) -> bool:
    return payload.get("status") == "resolved"


def headline(payload: dict) -> str:
    firing, back = HEADLINE[kind_of(payload)]
    return back if resolved(payload) else firing


def title(alert: dict, kind: str) -> str:
    """What the alert is about: `orders (day) · country=US`, `source raw_orders`, `job X`."""
    if kind == "freshness":
        return f"source {alert.get('source') or alert.get('metric') or '?'}"
    if kind == "run_failure":
        part = f" partition {alert['partition']}" if alert.get("partition") else ""
        return f"job {alert.get('job') or '?'}{part}"
    grain = f" ({alert['grain']})" if alert.get("grain") else ""
    slice_ = f" · {alert['slice']}" if alert.get("slice") else ""
    return f"{alert.get('metric') or '?'}{grain}{slice_}"


def unusual(alert: dict) -> str | None:
    score = alert.get("score")
    if not isinstance(score, (int, float)) or isinstance(score, bool) or math.isnan(score):
        return None
    side = {"up": "above", "down": "below"}.get(alert.get("direction") or "", "above" if score >= 0 else "below")
    # the score is in robust sds, flagged beyond the sensitivity: 4.3 is just outside a 3.5 band
    edge = alert.get("band_edge")
    beyond = f" (flagged beyond {edge:g})" if isinstance(edge, (int, float)) and not isinstance(edge, bool) else ""
    return f"score {abs(score):.1f} {side} expected{beyond}"


def facts(alert: dict, kind: str) -> list[tuple[str, str]]:
    """(label, text) pairs shown for one alert; null fields are left out."""
    rows: list[tuple[str, str | None]] = []
    if kind == "anomaly":
        if alert.get("value") is not None or alert.get("expected") is not None:
            band = ""
            if alert.get("lower") is not None or alert.get("upper") is not None:
                band = f" (band {number(alert.get('lower'))}..{number(alert.get('upper'))})"
            rows.append(("value", f"{number(alert.get('value'))} vs expected {number(alert.get('expected'))}{band}"))
        rows.append(("how unusual", unusual(alert)))
        rows.append(("bucket", when(alert.get("bucket_start"))))
    elif kind == "freshness":
        rows.append(("last row", when(alert.get("last_row_at")) or "never"))
        rows.append(("allowance", duration(alert.get("allowance"))))
    else:
        rows.append(("run", alert.get("run_id")))
        error = str(alert.get("error") or "").strip().splitlines()
        rows.append(("error", error[0][:300] if error else None))
    rows += [("since", when(alert.get("since"))), ("severity", alert.get("severity")),
             ("owner", alert.get("owner")), ("reason", alert.get("reason"))]
    return [(label, str(text)) for label, text in rows if text not in (None, "")]


def subject(payload: dict) -> str:
    """`[FIRING] orders (day) 2 alerts — route growth`."""
    alerts = payload.get("alerts") or []
    kind = kind_of(payload)
    titles = sorted({title(a, kind).split(" · ")[0] for a in alerts})
    what = titles[0] if len(titles) == 1 else (payload.get("group") or ", ".join(titles[:3]))
    if kind != "anomaly":
        what = f"{headline(payload)} ({what})"
    count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    line = f"[{'RESOLVED' if resolved(payload) else 'FIRING'}] {what} {count} — route {payload.get('route')}"
    # a dimension value from the raw data may hold a line break: a header is one line
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", line).split())


def text_line(alert: dict, kind: str) -> str:
    """One line for an alert (Slack fallback, plain-text email)."""
    body = "; ".join(text if label in ("value", "how unusual") else f"{label} {text}"
                     for label, text in facts(alert, kind) if label != "reason")
    return f"{title(alert, kind)} — {body}" if body else title(alert, kind)


def plain_text(payload: dict) -> str:
    kind = kind_of(payload)
    lines = [f"{subject(payload)}", f"{headline(payload)}", ""]
    for alert in payload.get("alerts") or []:
        lines.append(f"* {title(alert, kind)}")
        lines += [f"    {label}: {text}" for label, text in facts(alert, kind)]
        if alert.get("link"):
            lines.append(f"    open in Dagster: {alert['link']}")
        lines.append("")
    lines.append(f"idempotency key: {payload.get('idempotency_key')}")
    return "\n".join(lines) + "\n"


def html_body(payload: dict) -> str:
    """A table, one row per alert, one column per fact."""
    kind, alerts, esc = kind_of(payload), payload.get("alerts") or [], html.escape
    per_alert = [dict(facts(a, kind)) for a in alerts]
    labels = list(dict.fromkeys(label for f in per_alert for label in f))
    cell = 'style="border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top"'
    head = "".join(f"<th {cell}>{esc(label)}</th>" for label in ["alert", *labels, "link"])
    rows = []
    for alert, f in zip(alerts, per_alert):
        link = f'<a href="{esc(alert["link"], quote=True)}">open in Dagster</a>' if alert.get("link") else ""
        cells = [esc(title(alert, kind)), *(esc(f.get(label, "")) for label in labels), link]
        rows.append("<tr>" + "".join(f"<td {cell}>{c}</td>" for c in cells) + "</tr>")
    colour = "#2e7d32" if resolved(payload) else ("#b00020" if kind != "anomaly" else "#e65100")
    return (f'<html><body><h2 style="color:{colour}">{esc(headline(payload))}</h2>'
            f"<p>{esc(subject(payload))}</p>"
            f'<table style="border-collapse:collapse">{"<tr>" + head + "</tr>"}{"".join(rows)}</table>'
            f'<p style="color:#888">idempotency key: {esc(str(payload.get("idempotency_key")))}</p>'
            "</body></html>\n")


def _mrkdwn(text: object) -> str:
    # Slack needs only these three escaped; the rest of mrkdwn is left to the author
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(payload: dict) -> dict:
    """Slack incoming-webhook JSON: `text` fallback and Block Kit `blocks`."""
    kind, alerts = kind_of(payload), payload.get("alerts") or []
    status = "RESOLVED" if resolved(payload) else "FIRING"
    header = f"{status} — {headline(payload)} · route {payload.get('route')}"
    if payload.get("group"):
        header += f" · {payload['group']}"
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": header[:150], "emoji": True}}]
    for alert in alerts[:45]:  # Slack allows 50 blocks per message
        lines = [f"*{_mrkdwn(title(alert, kind))}*"]
        lines += [f"*{label}:* {_mrkdwn(text)}" for label, text in facts(alert, kind)]
        if alert.get("link"):
            lines.append(f"<{alert['link']}|open in Dagster>")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
    if len(alerts) > 45:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"… and {len(alerts) - 45} more"}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"idempotency key `{_mrkdwn(payload.get('idempotency_key'))}`"}]})
    # the fallback (notifications, old clients) is mrkdwn too: `<!channel>` in a value would ping
    text = "\n".join(_mrkdwn(line) for line in [header, *(text_line(a, kind) for a in alerts)])
    return {"text": text, "blocks": blocks}

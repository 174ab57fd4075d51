"""Demo events, orders and follower snapshots with daily and weekly seasonality and a
few planted incidents. Each day is generated from its own seed, so building one day
(a Dagster daily partition) gives exactly the rows a 90-day run gives for that day.
No row lies in the future: today's rows stop at now (METRICS_NOW overrides it)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

ENTITY_TYPES = np.array(["model", "dataset", "space", "collection", "paper"])
ENTITY_WEIGHTS = np.array([0.45, 0.25, 0.18, 0.07, 0.05])
METRIC_TYPES = np.array(["Download", "View", "Like", "ReactionLike", "ReactionHeart"])
METRIC_WEIGHTS = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
COUNTRIES = np.array(["US", "DE", "FR", "IN", "BR", "JP"])
COUNTRY_WEIGHTS = np.array([0.35, 0.15, 0.12, 0.18, 0.12, 0.08])
N_USERS = 5_000
N_FOLLOWED = 40
# hour-of-day shape (UTC): quiet at night, peak in the afternoon
_HOURLY = 0.55 + 0.45 * np.sin((np.arange(24) - 8) / 24 * 2 * np.pi) ** 2
_WEEKLY = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.6, 0.55])  # Monday first


@dataclass(frozen=True)
class Incident:
    day_offset: int  # days after the first demo day
    hours: tuple[int, int]
    table: str
    factor: float
    what: str


# Planted so anomaly detection has something real to find.
INCIDENTS = (
    Incident(40, (9, 15), "entity_events", 0.15, "download outage: events drop to 15% for six hours"),
    Incident(55, (12, 14), "entity_events", 4.0, "reaction spike: four times the usual volume"),
    Incident(70, (0, 24), "orders", 0.4, "checkout incident: orders fall to 40% for a day"),
)


def _day_seed(seed: int, day: dt.date) -> int:
    return seed * 1_000_003 + day.toordinal()


def _rates(day: dt.date, base: float, table: str, first_day: dt.date) -> np.ndarray:
    rates = base * _HOURLY / _HOURLY.mean() * _WEEKLY[day.weekday()]
    for inc in INCIDENTS:
        if inc.table == table and (day - first_day).days == inc.day_offset:
            rates = rates.copy()
            rates[inc.hours[0]:inc.hours[1]] *= inc.factor
    return rates / 24


def _timestamps(rng: np.random.Generator, day: dt.date, hourly_rates: np.ndarray) -> np.ndarray:
    counts = rng.poisson(hourly_rates)
    hours = np.repeat(np.arange(24), counts)
    seconds = hours * 3600 + rng.uniform(0, 3600, size=hours.size)
    base = np.datetime64(day.isoformat(), "us")
    return np.sort(base + (seconds * 1e6).astype("timedelta64[us]"))


def generate_day(day: dt.date, seed: int = 7, events_per_day: int = 6_000, first_day: dt.date | None = None,
                 now: dt.datetime | None = None) -> dict[str, pd.DataFrame]:
    """One UTC day of rows, none after `now` (naive UTC; default: the current time or
    METRICS_NOW). The whole day is drawn first and cut afterwards, so a past day's rows
    never depend on when they were generated."""
    first_day = first_day or day
    if now is None:
        from ..warehouse.read import now_utc
        now = now_utc()
    rng = np.random.default_rng(_day_seed(seed, day))
    ts = _timestamps(rng, day, _rates(day, events_per_day, "entity_events", first_day))
    n = ts.size
    metric_type = rng.choice(METRIC_TYPES, size=n, p=METRIC_WEIGHTS)
    reaction = np.isin(metric_type, ["ReactionLike", "ReactionHeart"])
    removed = reaction & (rng.random(n) < 0.2)
    users = rng.zipf(1.3, size=n) % N_USERS
    entity_type = rng.choice(ENTITY_TYPES, size=n, p=ENTITY_WEIGHTS)
    spike = [i for i in INCIDENTS if i.what.startswith("reaction") and (day - first_day).days == i.day_offset]
    if spike:
        # the spike is reactions only: re-label most events in the window as reactions
        hours = (ts - np.datetime64(day.isoformat(), "us")).astype("timedelta64[h]").astype(int)
        in_window = (hours >= spike[0].hours[0]) & (hours < spike[0].hours[1]) & (rng.random(n) < 0.7)
        metric_type = np.where(in_window, "ReactionHeart", metric_type)
        reaction = reaction | in_window
    id_base = (day.toordinal() - dt.date(2020, 1, 1).toordinal()) * 10_000_000
    events = pd.DataFrame({
        "event_id": np.arange(n, dtype=np.int64) + id_base,
        "entity_type": entity_type,
        "entity_id": [f"{t}-{i}" for t, i in zip(entity_type, rng.integers(0, 2_000, size=n))],
        "user_id": np.char.add("u", users.astype(str)),
        "metric_type": metric_type,
        "metric_value": np.where(reaction & removed, -1.0, 1.0),
        "created_at": ts,
    })
    ots = _timestamps(rng, day, _rates(day, max(events_per_day // 15, 1), "orders", first_day))
    m = ots.size
    amount = np.round(rng.lognormal(3.4, 0.6, size=m), 2)
    orders = pd.DataFrame({
        "order_id": np.arange(m, dtype=np.int64) + id_base,
        "user_id": np.char.add("u", (rng.integers(0, N_USERS, size=m)).astype(str)),
        "country": rng.choice(COUNTRIES, size=m, p=COUNTRY_WEIGHTS),
        "ordered_at": ots,
        "amount": amount,
        "refunded": rng.random(m) < 0.04,
        "latency_ms": np.round(rng.gamma(4.0, 60.0, size=m), 1),
    })
    # followers: each tracked user observed a few times a day, a slow random walk
    snaps = []
    for u in range(N_FOLLOWED):
        k = int(rng.integers(1, 5))
        obs = np.sort(rng.uniform(0, 86_400, size=k))
        level = 100 * (u + 1) + (day.toordinal() % 365) * (u % 5) + np.cumsum(rng.integers(-3, 6, size=k))
        for s, f in zip(obs, level):
            snaps.append((f"u{u}", np.datetime64(day.isoformat(), "us") + np.timedelta64(int(s * 1e6), "us"), int(f)))
    followers = pd.DataFrame(snaps, columns=["user_id", "observed_at", "followers"])
    frames = {"entity_events": events, "orders": orders, "follower_snapshots": followers}
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    cutoff = np.datetime64(now, "us")
    if cutoff < np.datetime64(day.isoformat(), "us") + np.timedelta64(1, "D"):
        frames = {t: f[f[TIME_COLUMNS[t]].values <= cutoff].reset_index(drop=True) for t, f in frames.items()}
    return frames


TIME_COLUMNS = {"entity_events": "created_at", "orders": "ordered_at", "follower_snapshots": "observed_at"}


def generate_range(start: dt.date, end: dt.date, seed: int = 7, events_per_day: int = 6_000,
                   now: dt.datetime | None = None) -> dict[str, pd.DataFrame]:
    """All demo rows for days in [start, end), none after `now` (see generate_day)."""
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in TIME_COLUMNS}
    day = start
    while day < end:
        for k, v in generate_day(day, seed, events_per_day, first_day=start, now=now).items():
            parts[k].append(v)
        day += dt.timedelta(days=1)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}

"""The per-bucket pipeline over a batch of training windows (one row per scored bucket,
from one series or many): enough history, first robust pass, candidate fits, the
choice of seasonality and domain, the band. Every step reduces each row on its own, so
a row's result never depends on the other rows of the batch (idempotency)."""
from __future__ import annotations

import numpy as np

from .bands import band, band_params, quantile_in
from .domain import JACOBIAN, LOG, SQRT, VALUE, back, forward, sqrt_offset, takes
from .launch import since_launch
from .models import anscombe, fit_count, fit_fraction, fit_ratio, is_proportion, ratio_t, selection_stat
from .seasonality import fold, holds_cycles, robust_residuals
from .settings import PERIOD, candidates, level_span, min_cycles
from .stats import SCALE_EFFICIENCY, nanmean, quantile_skew, resolution_floor, robust_center_scale, winsorized_scale

TIE = 1.01  # a richer seasonality (or a transformed domain) must beat the simpler choice by at least 1%
VOLUME_PERIOD = {"hour": PERIOD["hour_of_day"], "day": PERIOD["day_of_week"]}  # an average's count's cycle


def score_rows(windows, value, num_t, den_t, shape, grain, settings, min_hist, hour0=None,
               seen=None) -> dict[str, np.ndarray]:
    """`hour0`: each window's scored bucket's hour of the UTC day (hours; None: midnight);
    `seen`: the windows' values with the excluded buckets in, for the launch rule
    (launch.since_launch)."""
    n = value.size
    windows = since_launch(windows, shape, level_span(grain, settings), seen)
    valid = ~np.isnan(windows[-1])
    have = valid.sum(axis=1)
    out = empty_rows(n, have, min_hist)
    if shape == "ratio":
        out["enough"] &= (den_t > 0) & ~np.isnan(num_t)
        out["proportion"] = is_proportion(*windows)
    rows = np.nonzero(out["enough"])[0]
    if rows.size == 0:
        return out
    win = [w[rows] for w in windows]
    ok = valid[rows]
    prop = out["proportion"][rows]
    m = fit_variants(win, ok, value[rows], shape, grain, settings, den_t[rows], prop,
                     hour0=None if hour0 is None else hour0[rows])
    raw = windows[0][rows] / windows[1][rows] if shape == "ratio" else windows[0][rows]
    # a chosen variant whose fit gives no band at t (too few residuals left in its scale or
    # seasonality) yields to the next best one that can: the bucket is scored if any can
    stats, usable = m["stats"].copy(), m["usable"].copy()
    todo = np.arange(rows.size)
    while todo.size:
        choice = choose(stats[:, todo], usable[:, todo], m["n_common"][todo],
                        None if m["skew"] is None else m["skew"][:, todo], m["season"])
        retry = []
        for i, (dom, c, _) in enumerate(m["variants"]):
            sel = todo[choice == i]
            if sel.size == 0:
                continue
            fit = m["fits"][(dom, c)].rows(sel)
            r = rows[sel]
            offset = m["offset"][sel]
            v = forward(value[r], dom, offset)
            params = band_params(fit, shape, settings.sensitivity, quantile_in(settings, dom))
            e, lo, hi, sc = band(fit, shape, settings.sensitivity, v, num_t[r], den_t[r], params)
            # a series that never went below 0 (amounts, counts, ratios) cannot: its band stops
            # at 0 instead of promising negative values (the score, and so the flags, unchanged)
            with np.errstate(invalid="ignore"):
                nonneg = np.all(np.isnan(raw[sel]) | (raw[sel] >= 0), axis=1) & ~(value[r] < 0)
            same = fold(raw[sel], PERIOD[c])[:, :, 0] if PERIOD[c] > 1 else raw[sel]
            store(out, r, e, lo, hi, sc, fit.volume, c, dom, nonneg, record(same, value[r]), offset=offset)
            failed = sel[np.isnan(e)]
            usable[i, failed] = False
            stats[i, failed] = np.inf
            retry.append(failed[usable[:, failed].any(axis=0)])
        todo = np.concatenate(retry) if retry else todo[:0]
    first = np.argmax(ok, axis=1)
    out["span"][rows] = ok.shape[1] - first
    return out


def empty_rows(n: int, have: np.ndarray, min_hist: int) -> dict[str, np.ndarray]:
    return {"have": have, "expected": np.full(n, np.nan), "lower": np.full(n, np.nan), "upper": np.full(n, np.nan),
            "score": np.full(n, np.nan), "volume": np.full(n, np.nan), "seasonality": np.full(n, "", dtype=object),
            "domain": np.full(n, VALUE, dtype=object), "proportion": np.zeros(n, bool),
            "record": np.full(n, "", dtype=object), "span": np.zeros(n, int), "enough": have >= min_hist,
            "run": np.zeros(n, int)}


def store(out, r, e, lo, hi, sc, volume, c, dom, nonneg, rec, run=None, offset=0.0) -> None:
    """Write the band of rows `r` (in the fit's domain, with its square root's offset:
    back to values here), and for hours the run each completes (runs.py)."""
    e, lo, hi = back(e, dom, offset), back(lo, dom, offset), back(hi, dom, offset)
    lo = np.where(nonneg, np.maximum(lo, 0.0), lo)
    e = np.where(nonneg, np.maximum(e, 0.0), e)
    out["expected"][r], out["lower"][r], out["upper"][r], out["score"][r] = e, lo, hi, sc
    if volume is not None:
        out["volume"][r] = volume
    out["seasonality"][r] = c
    out["domain"][r] = dom
    out["record"][r] = rec
    if run is not None:
        out["run"][r] = run


def record(same: np.ndarray, value: np.ndarray) -> np.ndarray:
    """"lowest" / "highest" when the value is beyond every earlier value of its phase (2+)."""
    nvals = np.count_nonzero(~np.isnan(same), axis=1)
    # fmin / fmax ignore NaN (NaN for a row without values: never compared, nvals < 2)
    with np.errstate(invalid="ignore"):
        lowest = (nvals >= 2) & (value < np.fmin.reduce(same, axis=1))
        highest = (nvals >= 2) & (value > np.fmax.reduce(same, axis=1))
    return np.where(lowest, "lowest", np.where(highest, "highest", ""))


def fit_variants(win, ok, value, shape, grain, settings, den_t, prop, rules=None, ahead: int = 1, hour0=None) -> dict:
    """Steps 2-4 for a batch of windows: first pass, each candidate fit (seasonality x
    domain) and its selection statistic. `value`: the scored values, which a square root
    or log domain must take (None: not checked here, hourly.py checks per bucket).
    `rules` (a dict): receives per domain the cleaned windows, the first pass's rule,
    the resolution floor and the windows with every value, for hourly.py. `ahead`: the
    buckets after the window the fits serve (hourly.py: a day), each of whose phases a
    seasonal profile must have seen in two cycles (seasonality.holds_cycles). Also
    returns per row the square root's offset (domain.sqrt_offset; 0 when unused). `hour0`: the
    hour of the UTC day at each window's end (hour_and_weekday's weekdays are calendar days;
    None: midnight)."""
    n = ok.shape[0]
    k = level_span(grain, settings)
    # the level before an excursion (bands._before_excursion): hours only, whose level
    # spans (a day) average enough buckets to tell a step from a trend
    walk = grain == "hour"
    names = candidates(grain, settings)
    need = min_cycles(settings)
    avail = {c: holds_cycles(ok, PERIOD[c], need, ahead) if PERIOD[c] > 1 else np.ones(n, bool) for c in names}
    if "none" not in avail:  # an explicit seasonality without enough cycles yet falls back to none
        avail["none"] = ~np.any([avail[c] for c in names], axis=0)
        names = names + ("none",)
    # domains (domain.py): the value itself, for a positive window its log, for one >= 0
    # its square root (with an offset when it has zeros); milder first, as on a tie
    # (choose) the earlier wins
    domains = {VALUE: np.ones(n, bool)}
    offset = np.zeros(n)
    if shape == "fraction":
        offset = sqrt_offset(win[0], ok)
        with np.errstate(invalid="ignore"):
            positive = np.all(~ok | (win[0] > 0), axis=1)
        for dom, fine in ((SQRT, ~np.isnan(offset)), (LOG, positive)):
            if value is not None:
                fine = fine & takes(value, dom, offset)
            if fine.any():
                domains[dom] = fine
        offset = np.where(domains.get(SQRT, np.zeros(n, bool)), offset, 0.0)
    variants, fits, fitted = [], {}, []  # fitted: (rows, the fit of those rows) per variant
    for dom, dom_ok in domains.items():
        shift = offset[:, None] if dom == SQRT else 0.0
        full = [forward(np.where(ok, win[0], 1.0), dom, shift) + np.where(ok, 0.0, np.nan)] if dom != VALUE else win
        floor = resolution_floor(full[0]) if shape == "fraction" else 1.0
        rule = {} if rules is not None else None
        w = clean(full, shape, settings.sensitivity, names, ok, k, prop, floor, rule, ahead)
        if rules is not None:
            rules[dom] = (w, rule, floor, full)
        for c in names:
            usable = avail[c] & dom_ok
            if not usable.any():
                continue
            # fitted on the rows it can serve only (the others never read it; rows are
            # reduced on their own, so the same numbers), laid back over all rows
            r = slice(None) if usable.all() else np.nonzero(usable)[0]
            h0 = None if hour0 is None else np.asarray(hour0)[r]
            if shape == "count":
                f = fit_count(w[0][r], c, PERIOD[c], k, full[0][r], walk, h0)
            elif shape == "fraction":
                f = fit_fraction(w[0][r], c, PERIOD[c], k, full[0][r], floor[r],
                                 win[1][r] if len(win) > 1 else None, VOLUME_PERIOD.get(grain, 1), walk, h0)
            else:
                f = fit_ratio(w[0][r], w[1][r], c, PERIOD[c], k, den_t[r], prop[r], full[0][r], full[1][r], walk, h0)
            variants.append((dom, c, usable))
            fits[(dom, c)] = f if usable.all() else f.widen(r, n)
            fitted.append((r, f))
    common = np.ones(ok.shape, bool)
    for dom, c, usable in variants:
        common &= ~np.isnan(fits[(dom, c)].resid) | ~usable[:, None]
    # compare by likelihood: log(scale), plus the domain's Jacobian term (domain.py)
    stats = np.full((len(variants), n), np.inf)
    for i, ((dom, c, usable), (r, f)) in enumerate(zip(variants, fitted)):
        with np.errstate(divide="ignore", invalid="ignore"):
            st = np.log(selection_stat(f, shape, common[r]))
            if dom != VALUE:
                used = common[r] & ok[r]  # log(1) elsewhere: the log of a NaN or 0 is slow
                x = win[0][r] + (offset[r][:, None] if dom == SQRT else 0.0)
                st = st + JACOBIAN[dom] * nanmean(np.where(used, np.log(np.abs(np.where(used, x, 1.0))), np.nan))
        stats[i, r] = np.where(~np.isnan(st), st, np.inf)
    # a fraction's domains: how asymmetric each one leaves the residuals (choose)
    skew = None
    if len({dom for dom, _, _ in variants}) > 1:
        skew = np.full((len(variants), n), np.nan)
        for i, (r, f) in enumerate(fitted):
            skew[i, r] = np.abs(quantile_skew(np.where(common[r], f.resid, np.nan)))
    return {"variants": variants, "fits": fits, "stats": stats, "n_common": np.count_nonzero(common, axis=1),
            "usable": np.array([u for _, _, u in variants]), "offset": offset, "skew": skew,
            "season": np.array([names.index(c) for _, c, _ in variants])}


def choose(stats: np.ndarray, usable: np.ndarray, n_common: np.ndarray, skew: np.ndarray | None = None,
           season: np.ndarray | None = None) -> np.ndarray:
    """Per row, the index of the chosen variant. `skew` (variants x rows, a fraction
    with several domains): |quantile skewness| of each variant's residuals; `season`:
    each variant's seasonality (its index in the candidates)."""
    best = stats.min(axis=0)
    # the simplest candidate within the noise of the comparison: one standard error of a
    # log scale estimated from n residuals (so a small window does not pick the luckiest
    # candidate and then trust its understated noise), at least 1%
    tie = np.maximum(np.log(TIE), 1.0 / np.sqrt(2.0 * SCALE_EFFICIENCY * np.maximum(n_common, 1)))
    within = stats <= best + tie
    choice = np.argmax(within, axis=0)
    if skew is not None:
        # Among the domains of that seasonality the spread cannot tell apart, the one that
        # leaves the residuals most symmetric: the band is symmetric in its domain, and the
        # robust spread is blind to a long side (a latency's, a price's). Another domain
        # than the milder one only when clearly more symmetric: by one standard error of
        # the difference of two domains' skewness on the same residuals, at most about
        # 1 / sqrt(n) (each one alone has about that error too, but the two move
        # together; two such errors kept young windows of a skewed series, a price
        # averaged over few orders, in a scale that hides its long side).
        cols = np.arange(stats.shape[1])
        margin = 1.0 / np.sqrt(np.maximum(n_common, 1))
        peers = within & (season[:, None] == season[choice][None, :]) & ~np.isnan(skew)
        cand = np.where(peers, skew, np.inf)
        alt = np.argmin(cand, axis=0)
        first = skew[choice, cols]
        # (a chosen variant whose skewness is undefined, most residuals tied, is kept)
        better = np.isfinite(cand[alt, cols]) & (cand[alt, cols] < first - margin)
        choice = np.where(better, alt, choice)
    return np.where(best < np.inf, choice, np.argmax(usable, axis=0))  # no spread to compare: the simplest


def clean(win, shape, sensitivity, names, ok, k, prop, floor, rule=None, ahead: int = 1):
    """The first pass: leave out each window's own outliers (NaN), judged by a median fit
    of the richest seasonality with 2+ cycles for the phases ahead
    (seasonality.holds_cycles; else blocks of the level span). `floor`: the smallest
    scale (1 in the variance-stabilised scales: Poisson or binomial noise cannot be
    smaller; the data's resolution for fractions). `rule` (a dict): receives
    per row the period, the median fit's continuation, centre and scale, and the window's
    residuals in scales from the previous cycle's median (z) and from their own
    cycle's (z_own) (hourly.py; runs.py)."""
    n, w = ok.shape
    seasonal = [c for c in names if PERIOD[c] > 1]
    period = np.ones(n, int)
    for c in sorted(seasonal, key=lambda c: PERIOD[c]):
        enough = holds_cycles(ok, PERIOD[c], 2, ahead)
        period = np.where(enough, PERIOD[c], period)
    if shape == "ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            y = win[0] / win[1]
    elif shape == "count":
        y = anscombe(win[0])
    else:
        y = win[0]
    outlier = np.zeros((n, w), bool)
    if rule is not None:
        rule.update(period=period, level=np.full(n, np.nan), phase=np.zeros((n, int(period.max()))),
                    center=np.full(n, np.nan), scale=np.full(n, np.nan), z=np.full((n, w), np.nan),
                    z_own=np.full((n, w), np.nan))
    for p in np.unique(period):
        sel = np.nonzero(period == p)[0]
        yy = np.where(ok[sel], y[sel], np.nan)
        r = robust_residuals(yy, int(p), k, rule is not None)
        lagged = None
        if rule is not None:
            r, rule["level"][sel], rule["phase"][sel, :p], lagged = r
        if shape == "ratio":
            pr = np.broadcast_to(prop[sel][:, None], r.shape)
            t_num = ratio_t(win[0][sel], win[1][sel], pr)
            fitted = np.clip(yy - r, 0.0, np.where(pr, 1.0, np.inf))
            r = t_num - ratio_t(fitted * win[1][sel], win[1][sel], pr)
            if lagged is not None:
                fitted = np.clip(yy - lagged, 0.0, np.where(pr, 1.0, np.inf))
                lagged = t_num - ratio_t(fitted * win[1][sel], win[1][sel], pr)
        fl = floor[sel] if np.ndim(floor) else floor
        center, scale, _ = robust_center_scale(r, fl)
        scale = np.fmax(winsorized_scale(r - center[:, None], scale), fl)
        with np.errstate(invalid="ignore"):
            outlier[sel] = np.abs(r - center[:, None]) > sensitivity * scale[:, None]
        if rule is not None:
            rule["center"][sel], rule["scale"][sel] = center, scale
            with np.errstate(invalid="ignore", divide="ignore"):
                unit = np.where(scale > 0, scale, np.nan)[:, None]
                rule["z"][sel], rule["z_own"][sel] = (lagged - center[:, None]) / unit, (r - center[:, None]) / unit
    return [np.where(outlier, np.nan, a) for a in win]



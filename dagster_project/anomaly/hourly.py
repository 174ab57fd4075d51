"""The hourly grain, fitted once per UTC day: the expensive steps (first pass, candidate
fits, the choice, the profile, the noise and tail edges) run on the training window
that ends at the start of the bucket's day (its "anchor") and serve the 24 hours of
that day; per bucket only the level (the mean of its last `level_span` de-seasonalised
buckets), the band and the score. A bucket's row still depends only on the bucket and
the history before it (`history_needed` covers the anchor's window), so scoring in
pieces, in batches or with more history gives the same rows.

The last `level_span` buckets, today's included, enter the level unless the first
pass's median fit, as seen from t (the cycle ending at t without its phases), calls
them outliers: a past hour of an incident does not move the level, a quiet weekend
does; when nearly all of them are outliers, their median is the new level
(models.level_shift). The same fit's residuals of the day so far make runs (runs.py).

Buckets the anchor does not serve take the per-bucket path (core.score_rows):
a training window under two weeks, an anchor short of the minimum history or of two
cycles (at least half full) of the richest candidate seasonality (a young series, where
a fit cut at midnight and one cut at t differ most), or a ratio whose window stopped
being a proportion today. An anchor that has two such cycles but saw an hour of the day
ahead in one of them only does without that seasonality for the day (core.fit_variants,
seasonality.holds_cycles). Windows are cut to the whole weeks that hold data (`_width`):
a young series' windows are mostly empty.

Where this differs from the per-bucket fit, by design (rows still depend only on the
past): the square root and log domains need the anchor's whole window (up to 23 hours
older than the bucket's) to be positive; when the last `level_span` hours are all gaps
the level falls back to the mean over [anchor window start, t); and only this path
flags runs of hours (runs.py), from the same first pass as seen from t."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .bands import band_params, band_recovery, quantile_in
from .core import choose, empty_rows, fit_variants, record, score_rows, store
from .domain import LOG, SQRT, VALUE, forward
from .launch import launch_start, since_launch
from .models import (Fit, anscombe, anscombe_inv, inside_proportion, level_shift, proportion_window, ratio_t, ratio_t_inv,
                     spans_before, window_level)
from .parallel import check_stop
from .runs import run_hours, run_variance
from .seasonality import cycles_with_data, fold, phase_volume, spread
from .settings import PERIOD, candidates, level_span, min_cycles, training_buckets
from .stats import nanmedian, prefix_sum

AHEAD = 23  # the day's buckets before its last hour: an anchor's window extends over them
WEEK = 168
MIN_ANCHORED = 2 * WEEK  # a shorter window is fitted per bucket: a fit up to a day old is too stale for it


def score_hourly(arrays, t, hour, value, num_t, den_t, shape, settings, min_hist, per_chunk, seen=None) -> dict:
    """arrays: the batch's training arrays, every series padded with `history_needed`
    NaN in front and AHEAD behind, concatenated; t: each scored bucket's index in them;
    hour: its hour of the UTC day; seen: arrays[0] with the excluded buckets in (the
    launch rule also reads it; None: nothing excluded). Returns core.score_rows's columns
    per scored bucket."""
    w = training_buckets("hour", settings)
    n = t.size
    valid = ~np.isnan(arrays[-1])
    raw = arrays[0] / arrays[1] if shape == "ratio" else arrays[0]
    cv = prefix_sum(valid)
    day = t - hour
    have, have_day = cv[t] - cv[t - w], cv[day] - cv[day - w]
    since = t - w  # each bucket's history: its window, or from its launch
    if shape in ("count", "fraction"):  # a launched window's history starts at its launch (launch.py)
        k = level_span("hour", settings)
        since, start_day = (launch_start(arrays[0], at, w, k, shape == "count", seen) for at in (t, day))
        have, have_day = cv[t] - cv[since], cv[day] - cv[start_day]
    out = empty_rows(n, have, min_hist)
    prop_t = prop_a = np.zeros(n, bool)
    if shape == "ratio":
        out["enough"] &= (den_t > 0) & ~np.isnan(num_t)
        co = prefix_sum(valid & ~inside_proportion(arrays[0], arrays[1]))
        prop_t, prop_a = (proportion_window(co[at] - co[at - w], cv[at] - cv[at - w]) for at in (t, day))
        out["proportion"] = prop_t
    direct = out["enough"] & (have_day >= min_hist) & (prop_t == prop_a) & (w >= MIN_ANCHORED)
    # a young anchor (not yet 2 cycles of the richest candidate) differs most from the
    # per-bucket fit, whose cycles end at t: those buckets take the per-bucket path
    # (an explicit seasonality the window cannot hold twice: fit_variants falls back to none)
    richest = max((PERIOD[c] for c in candidates("hour", settings) if w // PERIOD[c] >= min_cycles(settings)), default=1)
    if richest > 1 and direct.any():
        days, at = np.unique(day[direct], return_inverse=True)
        ok = ~np.isnan(sliding_window_view(arrays[-1], w)[days - w])
        direct[direct] = (cycles_with_data(ok, richest) >= min_cycles(settings))[at]
    nxt = _next_valid(valid)
    # the columns a window keeps (_width) start at its first training value, or excluded
    # one: the launch rule counts the excluded zeros before a launch too
    kept = nxt if seen is None else _next_valid(valid | ~np.isnan(seen))
    slow = np.nonzero(out["enough"] & ~direct)[0]
    width = _width(t[slow] - kept[t[slow] - w], w)
    for wd in np.unique(width):
        group = slow[width == wd]
        step = max(1, per_chunk * w // wd)
        for lo in range(0, group.size, step):
            check_stop()
            r = group[lo:lo + step]
            res = score_rows([sliding_window_view(a, wd)[t[r] - wd] for a in arrays], value[r], num_t[r], den_t[r],
                             shape, "hour", settings, min_hist, hour[r],
                             None if seen is None else sliding_window_view(seen, wd)[t[r] - wd])
            for key, v in res.items():
                out[key][r] = v
    rows = np.nonzero(direct)[0]
    if rows.size == 0:
        return out
    anchors, inv = np.unique(day[rows], return_inverse=True)
    neg = prefix_sum(raw < 0)
    nonneg = (neg[t] - neg[t - w] == 0) & ~(value < 0)
    # the square root and log domains need every value of the day so far, and the scored
    # one, above 0 (the square root with an offset: at or above 0)
    nonpos = prefix_sum(valid & ~(arrays[0] > 0))
    negative = prefix_sum(valid & (arrays[0] < 0))
    transformable = {"positive": (nonpos[t] - nonpos[day] == 0) & (value > 0),
                     "nonneg": (negative[t] - negative[day] == 0) & (value >= 0)}
    out["span"][rows] = t[rows] - nxt[since[rows]]  # ("highest in 8 weeks" of zeros before a launch: no)
    width = _width(anchors - kept[anchors - w], w)
    for wd in np.unique(width):
        group = np.nonzero(width == wd)[0]
        step = max(1, per_chunk * w // wd)
        for lo in range(0, group.size, step):
            check_stop()
            chunk = group[lo:lo + step]
            sel = np.nonzero(np.isin(inv, chunk))[0]
            _score_day(out, rows[sel], np.searchsorted(chunk, inv[sel]), anchors[chunk], arrays, raw, t, hour,
                       value, num_t, den_t, prop_a, nonneg, transformable, shape, settings, wd, since, seen)
    return out


def _width(span, w):
    """Training columns a window needs: all its data (`span`: buckets since its first
    value), in whole weeks, at most w. The columns left out are all NaN: they would
    change nothing but the cost (a young series' windows are mostly empty)."""
    return np.minimum(w, (span // WEEK + 1) * WEEK)


def _score_day(out, rows, a, anchors, arrays, raw, t, hour, value, num_t, den_t, prop_a, nonneg, transformable,
               shape, settings, w, since, seen) -> None:
    """Fit the anchors (windows of w buckets ending at `anchors`), then score `rows` (a:
    their anchor; `since`: where each scored bucket's history starts; `seen`: the
    launch rule's values, launch.since_launch)."""
    k = level_span("hour", settings)
    ext = [sliding_window_view(x, w + AHEAD)[anchors - w] for x in arrays]
    seen_win = None if seen is None else sliding_window_view(seen, w)[anchors - w]
    win = since_launch([e[:, :w] for e in ext], shape, k, seen_win)
    ok = ~np.isnan(win[-1])
    prop = np.zeros(anchors.size, bool)
    prop[a] = prop_a[rows]
    rules: dict = {}
    m = fit_variants(win, ok, None, shape, "hour", settings, np.ones(anchors.size), prop, rules, AHEAD + 1)
    offset = m["offset"][a]
    # per bucket, the variants whose domain takes the day so far and the scored value
    serves = {VALUE: np.ones(rows.size, bool), LOG: transformable["positive"][rows],
              SQRT: (transformable["nonneg"][rows] & (offset > 0)) | transformable["positive"][rows]}
    serves = np.array([serves[dom] for dom, _, _ in m["variants"]])
    skew = m["skew"]
    if serves.all():
        choice = choose(m["stats"], m["usable"], m["n_common"], skew, m["season"])[a]
    else:
        choice = choose(np.where(serves, m["stats"][:, a], np.inf), m["usable"][:, a] & serves, m["n_common"][a],
                        None if skew is None else np.where(serves, skew[:, a], np.nan), m["season"])
    h = hour[rows]
    run_stats = {}
    y = _transform(arrays, shape)
    for i, (dom, c, _) in enumerate(m["variants"]):
        sel = np.nonzero(choice == i)[0]
        if sel.size == 0:
            continue
        r, used = rows[sel], np.unique(a[sel])
        at = np.searchsorted(used, a[sel])
        fit = m["fits"][(dom, c)].rows(used)
        params = {key: None if v is None else v[at]
                  for key, v in band_params(fit, shape, settings.sensitivity, quantile_in(settings, dom)).items()}
        window, rule, _, full = rules[dom]
        this = [value[r]] if shape != "ratio" else [num_t[r], den_t[r]]
        rule_rows = {key: v[a[sel]] for key, v in rule.items() if key not in ("z", "z_own")}
        recent, every, z_day, ref = _recent([x[a[sel], w - k:] for x in ext], this, rule_rows, y, dom,
                                       offset[sel], shape, settings.sensitivity, prop[a[sel]], t[r], h[sel], k)
        expected, kappa, volume, recovered, longrun, spans = _baseline(fit, shape, [x[used] for x in window],
                                                                       [x[used] for x in full], recent, every, at,
                                                                       h[sel], k, w, den_t[r])
        # a fraction with no value below 0 is not expected below 0: a new level plus a
        # phase's offset can land there (Sundays at 0 among weekdays at 900, then every day
        # at 40: a Sunday expected at -23 square-root units, its 0 flagged as a rise). Hours
        # are not held to the window's whole range (an hour's level comes from hours after
        # its anchor's window). The log domain holds no 0 (NaN: no floor)
        floor = None
        if shape == "fraction":
            zero = np.where(nonneg[r], forward(np.zeros(r.size), dom, offset[sel]), np.nan)
            floor = np.stack([zero, np.full(r.size, np.inf)], axis=1)
        now = Fit(c, fit.period, resid=None, resid_all=None, expected=expected, kappa=kappa,
                  proportion=prop[a[sel]], recovered=recovered, longrun=longrun, spans=spans, value_range=floor)
        v = forward(value[r], dom, offset[sel])
        e, lo, hi, sc, shown, recovery = band_recovery(now, shape, settings.sensitivity, v, num_t[r], den_t[r], params)
        same = _same_phase(raw, t[r], fit.period, training_buckets("hour", settings), since[r])
        # an average's first pass does not know its counts (its residuals mix 2-value
        # nights with 60-value noons): no runs
        run = None
        if fit.counts is None:
            if dom not in run_stats:
                run_stats[dom] = run_variance(rule["z"], rule["z_own"])  # per anchor (runs.py)
            mean, var = run_stats[dom]
            # the run's residuals are from the first pass as seen from t: when its fit at t
            # lies outside the band (the last cycle was a day-long incident: the hours
            # after it stand out from it), or the value was judged a recovery, no run
            stale = ~((ref >= lo) & (ref <= hi))
            run = np.where(recovery | stale, 0,
                           run_hours(z_day, h[sel], mean[a[sel]], var[a[sel]], sc, settings.sensitivity))
        store(out, r, e, lo, hi, shown, volume, c, dom, nonneg[r], record(same, value[r]), run, offset[sel])


def _transform(arrays, shape) -> np.ndarray:
    """The series in the first pass's scale (core.clean): Anscombe, ratio, or a
    fraction's value (its domain, whose offset is per window, is applied by _recent)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if shape == "count":
            return anscombe(arrays[0])
        if shape == "ratio":
            return arrays[0] / arrays[1]
        return arrays[0]


def _recent(day, this, rule, y, dom, offset, shape, sensitivity, prop, t, h, k) -> tuple[list, list, np.ndarray,
                                                                                          np.ndarray]:
    """Per bucket (one row each): the last k buckets of its anchor's window and the day's
    buckets before it (NaN from hour h on), each left out when it is an outlier of the
    first pass's median fit as seen from t (core.clean): the median of the cycle (or
    block) ending at t without its phases, plus the anchor's deviation of its phase. (The anchor's own
    pass cuts cycles at midnight, so a whole quiet day would never be an outlier.)
    Also the same buckets with the outliers kept (models.level_shift), and the day's
    residuals from that fit in its scales, hours 0..h (`this`: the bucket's own value,
    or numerator and denominator), for runs (runs.py), and that fit at t (in the band's
    units: a count, a ratio, a fraction in its domain). y: the series in the first pass's
    scale, a fraction's before its domain (`dom`, with each row's square root `offset`)."""
    if dom != VALUE:
        day = [forward(day[0], dom, offset[:, None])]
        this = [forward(this[0], dom, offset)]
    period = rule["period"]
    block = np.where(period > 1, period, k)
    level = np.empty(t.size)
    for p in np.unique(block):
        sel = block == p
        cycle = sliding_window_view(y, int(p))[t[sel] - p]
        cycle = forward(cycle, dom, offset[sel, None]) if dom != VALUE else cycle
        # the median of the cycle without its phases (seasonality.robust_residuals): a
        # day-long incident inside it moves it by its share of the cycle, not by the
        # spread of the daily profile
        at = (h[sel, None] + np.arange(int(p))[None, :]) % period[sel, None]
        level[sel] = nanmedian(cycle - np.take_along_axis(rule["phase"][sel], at, axis=1))
    j = np.arange(-k, AHEAD)[None, :]
    phase = np.take_along_axis(rule["phase"], np.concatenate([j % period[:, None], (h % period)[:, None]], axis=1),
                               axis=1)
    fitted = level[:, None] + phase
    with np.errstate(invalid="ignore", divide="ignore"):
        if shape == "ratio":
            pr = np.broadcast_to(prop[:, None], fitted.shape)
            fitted = np.clip(fitted, 0.0, np.where(pr, 1.0, np.inf))
            both = [np.concatenate([d, x[:, None]], axis=1) for d, x in zip(day, this)]
            r = ratio_t(both[0], both[1], pr) - ratio_t(fitted * both[1], both[1], pr)
        else:
            both = np.concatenate([day[0], this[0][:, None]], axis=1)
            r = (anscombe(both) if shape == "count" else both) - fitted
        z = (r - rule["center"][:, None]) / np.where(rule["scale"] > 0, rule["scale"], np.nan)[:, None]
        keep = (j < h[:, None]) & ~(np.abs(r[:, :-1] - rule["center"][:, None]) > sensitivity * rule["scale"][:, None])
    # the day so far: hours 0..h-1 from the day's columns, hour h the bucket itself
    rows = np.arange(t.size)
    z_day = np.full((t.size, 24), np.nan)
    z_day[:, :AHEAD] = np.where(j[:, k:] < h[:, None], z[:, k:-1], np.nan)
    z_day[rows, h] = z[:, -1]
    before = j < h[:, None]
    # that fit's prediction at t (its residuals centre on rule["center"], in its scale)
    at_t, centre = fitted[:, -1], rule["center"]
    if shape == "count":
        ref = anscombe_inv(anscombe(at_t) + centre)
    elif shape == "ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            den_now = this[1]
            ref = ratio_t_inv(ratio_t(at_t * den_now, den_now, prop) + centre, den_now, prop) / den_now
    else:
        ref = at_t + centre
    return [np.where(keep, d, np.nan) for d in day], [np.where(before, d, np.nan) for d in day], z_day, ref


def _baseline(fit, shape, window, window_all, recent, every, at, h, k, w, den_t):
    """expected, kappa, volume, and the expectations on the level of the level span
    before the last one, on the anchor window's level, and (n, S) on the level of each
    span before the last (every value: `window_all`) (NaN: unknown; bands.
    band_recovery) at each bucket (anchor row `at`, hour `h`), as in models.fit_*:
    the level is the mean of the last k de-seasonalised buckets (`recent`; after a
    level shift the median of `every`, a ratio the ratio of their sums:
    models.level_shift), else of the anchor's window and the day so far."""
    p = fit.period
    phase = h % p
    if p > 1:
        s = fit.profile
        s_rec = s[at][:, (np.arange(k + AHEAD) - k) % p]
        s_win = spread(s, w // p, w)
        prof = s[at, phase]
    else:
        s_rec, s_win, prof = 1.0, 1.0, np.ones(at.size) if shape == "count" else np.zeros(at.size)
    rows = np.arange(at.size)

    def last(x):  # sum over the last k buckets before t
        cs = prefix_sum(np.nan_to_num(x, nan=0.0), axis=1)
        return cs[rows, h + k] - cs[rows, h]

    def last_median(x):  # median over the last k buckets before t
        return nanmedian(x[rows[:, None], h[:, None] + np.arange(k)[None, :]])

    def whole(x_win, x_rec):  # sum over the anchor's window and the day so far
        return np.nansum(x_win, axis=1)[at] + np.nansum(x_rec[:, k:], axis=1)

    def sums(x_win, den_win=None):  # prefix sums of the windows' values present (count, value, denominator)
        both = ~np.isnan(x_win) if den_win is None else ~np.isnan(x_win) & ~np.isnan(den_win)
        return (prefix_sum(both, axis=1), prefix_sum(np.where(both, x_win, 0.0), axis=1),
                None if den_win is None else prefix_sum(np.where(both, den_win, 0.0), axis=1))

    def levels_before(prefix, spans=1):  # models._levels_before of [t-w, t): positions h .. w+h
        c, s, dd = prefix
        j = np.arange(spans)[None, :]
        lo, hi = np.maximum(w - (j + 2) * k + h[:, None], 0), w - (j + 1) * k + h[:, None]
        row = at[:, None]
        cnt = c[row, hi] - c[row, lo]
        tot = s[row, hi] - s[row, lo]
        if dd is not None:
            cnt = np.where(dd[row, hi] - dd[row, lo] > 0, cnt, 0)
            tot = tot / np.where(cnt > 0, dd[row, hi] - dd[row, lo], 1.0)
        else:
            tot = tot / np.maximum(cnt, 1)
        return np.where(cnt >= max(1, k // 2), tot, np.nan)

    if shape == "ratio":
        (num, den), (num_w, den_w) = recent, window
        num_e, den_e = every
        shift = level_shift(last(~np.isnan(num) & ~np.isnan(den)), last(~np.isnan(num_e) & ~np.isnan(den_e)))
        adj_w = num_w - s_win * den_w if p > 1 else num_w
        sden = fit.profile_n[at, phase] if p > 1 else np.inf
        top = np.where(fit.proportion[at], 1.0, np.inf)

        def ratio_level(num, den):  # the recent ratio of sums, else the window's and the day's
            adj = num - s_rec * den if p > 1 else num
            a_t, d_t, wa, wd = last(adj), last(den), whole(adj_w, adj), whole(den_w, den)
            use = d_t > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                whole_level = np.where(wd > 0, wa / np.where(wd > 0, wd, 1.0), np.nan)
                return np.where(use, a_t / np.where(use, d_t, 1.0), whole_level), np.where(use, d_t, wd)

        recovered = np.clip(levels_before(sums(adj_w, den_w))[:, 0] + prof + fit.bias[at], 0.0, top)
        num_a, den_a = window_all
        adj_a = num_a - s_win * den_a if p > 1 else num_a
        spans = np.clip(levels_before(sums(adj_a, den_a), spans_before(w, k)) + prof[:, None] + fit.bias[at][:, None],
                        0.0, top[:, None])
        longrun = np.clip(window_level(adj_w, den_w)[at] + prof + fit.bias[at], 0.0, top)
        num, den = np.where(shift[:, None], num_e, num), np.where(shift[:, None], den_e, den)
        level, behind = ratio_level(num, den)
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = 1.0 + den_t / behind + den_t / np.where(sden > 0, sden, den_t)  # (models.fit_ratio)
        expected = np.clip(level + prof + fit.bias_t[at], 0.0, top)
        if p > 1:  # the anchor's (seasonality.phase_volume)
            volume = phase_volume(den_w, p, k)[at, phase]
        else:
            volume = nanmedian(den[rows[:, None], h[:, None] + np.arange(k)[None, :]])
        return expected, kappa, volume, recovered, longrun, spans
    with np.errstate(invalid="ignore", divide="ignore"):
        if shape == "count":
            d, d_e = (np.where(s_rec > 0, x / s_rec, np.nan) if p > 1 else x for x in (recent[0], every[0]))
            d_w, d_a = (np.where(s_win > 0, x / s_win, np.nan) if p > 1 else x for x in (window[0], window_all[0]))
        else:
            d, d_e = (x - s_rec if p > 1 else x for x in (recent[0], every[0]))
            d_w, d_a = (x - s_win if p > 1 else x for x in (window[0], window_all[0]))
    ok_w = (~np.isnan(d_w)).astype(float)

    def mean_level(d):  # the mean of the last k, else of the anchor's window and the day so far
        ok = (~np.isnan(d)).astype(float)
        c_last = last(ok)
        use = c_last > 0
        s_t = np.where(use, last(d), whole(d_w, d))
        c_t = np.where(use, c_last, whole(ok_w, ok))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c_t > 0, s_t / np.maximum(c_t, 1), np.nan), c_t

    shift = level_shift(last(~np.isnan(d)), last(~np.isnan(d_e)))
    before = levels_before(sums(d_w))[:, 0]
    spans = levels_before(sums(d_a), spans_before(w, k))
    d = np.where(shift[:, None], d_e, d)
    level, c_t = mean_level(d)
    level = np.where(shift, last_median(d), level)
    if shape == "fraction":  # an average's volume: its phase's median count (models.fit_fraction)
        volume = None if fit.volume_phase is None else fit.volume_phase[at, h % fit.volume_phase.shape[1]]
        return level + prof, None, volume, before + prof, window_level(d_w)[at] + prof, spans + prof[:, None]
    wsum = last(np.where(np.isnan(d), np.nan, s_rec))
    cyc = fit.profile_n[at, phase].astype(float) if p > 1 else np.inf
    mu = fit.bias_t[at] * level * prof
    kappa = 1.0 + np.where(wsum > 0, prof / np.where(wsum > 0, wsum, 1.0), 1.0 / np.maximum(c_t, 1)) \
        + 1.0 / np.maximum(cyc, 1.0)  # (models.fit_count)
    return (mu, kappa, mu, fit.bias[at] * before * prof, fit.bias[at] * window_level(d_w)[at] * prof,
            fit.bias[at][:, None] * spans * prof[:, None])


def _same_phase(raw, t, period, w, since):
    """The raw values of t's phase in its window (every one without a period), oldest
    first; NaN before `since` (a launch)."""
    step = np.arange(w, 0, -1) if period == 1 else period * np.arange(w // period, 0, -1)
    same = sliding_window_view(raw, w)[t - w] if period == 1 else raw[t[:, None] - step[None, :]]
    if not (since > t - w).any():
        return same
    return np.where(t[:, None] - step[None, :] < since[:, None], np.nan, same)



def _next_valid(valid):
    """Per position, the first index >= it with a value (len when none)."""
    idx = np.where(valid, np.arange(valid.size), valid.size)
    return np.minimum.accumulate(idx[::-1])[::-1]

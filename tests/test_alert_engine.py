"""The alert engine alone (no warehouse, no network): opening, open_within, provisional
detections, grouping, repeats, silences and resolution, on hand-made scored buckets."""
import datetime as dt

from dagster_project.alerting.config import AlertsConfig
from dagster_project.alerting.engine import Evaluator, MetricInfo, Scored

NOW = dt.datetime(2026, 11, 20, 12, 0)
DAY = dt.timedelta(days=1)

CONFIG = AlertsConfig.model_validate({
    "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:1/x"},
                 "log": {"type": "log", "path": "warehouse/alerts.log"}},
    "routes": [{"name": "growth", "match": {"domain": "growth"}, "channels": ["hook"], "group_by": ["metric"],
                "group_wait": "30s", "repeat_interval": "4h"}],
    "default_route": {"channels": ["log"], "group_wait": "0s"},
    "silences": [{"match": {"metric": "quiet"}, "starts": "2026-11-01T00:00:00Z", "ends": "2026-11-21T00:00:00Z"}],
})
METRICS = {
    "orders": MetricInfo("orders", "commerce", "shop@example.com", (), (), 3.0),
    "downloads": MetricInfo("downloads", "growth", "growth@example.com", (), (), 3.0),
    "quiet": MetricInfo("quiet", "commerce", None, (), (), 3.0),
}
SETTLE = {"hour": 6, "day": 3, "week": 1, "month": 1}


def bucket(metric, day, *, flagged=False, provisional=False, score=None, dim="", value="", grain="day"):
    score = score if score is not None else (8.0 if flagged else 0.5)
    return Scored(metric, grain, dim, value, dt.datetime(2026, 11, day), 10.0, 100.0, 80.0, 120.0, score, flagged,
                  "down" if flagged else None, provisional, f"{metric} low" if flagged else "in band")


def series(*rows):
    out = {}
    for r in rows:
        out.setdefault((r.metric, r.grain, r.dimension, r.dimension_value), []).append(r)
    return out


def run(scored, states=None, now=NOW):
    return Evaluator(CONFIG, METRICS, SETTLE, now).evaluate(scored, states or {})


def test_a_settled_detection_opens_and_waits_for_group_wait_before_a_message():
    out = run(series(bucket("downloads", 17), bucket("downloads", 18, flagged=True)))
    assert out.counts["opened"] == 1 and out.messages == []  # group_wait 30 s not over yet
    (state,) = out.states.values()
    assert state["route"] == "growth" and state["status"] == "open" and not state["notified"]
    later = run(series(bucket("downloads", 18, flagged=True)), dict(out.states), NOW + dt.timedelta(seconds=31))
    assert [m["status"] for m in later.messages] == ["firing"] and later.messages[0]["channel"] == "hook"


def test_an_old_detection_opens_nothing_and_a_weak_provisional_one_neither():
    old = run(series(bucket("orders", 2, flagged=True)))  # 18 days ago: beyond 2 days + 3 lookback
    weak = run(series(bucket("orders", 19, flagged=True, provisional=True, score=4.0)))
    strong = run(series(bucket("orders", 19, flagged=True, provisional=True, score=6.5)))
    assert old.states == {} and weak.states == {}
    assert len(strong.states) == 1


def test_a_detection_scored_provisional_opens_once_its_bucket_has_left_the_settle_lookback():
    """The day schedule rewrites a day last at D+3 23:10, while it is still provisional;
    nothing scores it after that. Its stored flag stayed provisional, so a detection
    between 1 and 2 times the sensitivity never opened."""
    stale = bucket("orders", 16, flagged=True, provisional=True, score=4.0)  # settled on the 20th, 00:00
    assert len(run(series(stale)).states) == 1
    assert run(series(stale), now=dt.datetime(2026, 11, 19, 23, 10)).states == {}  # still inside then


def test_one_message_per_group_lists_every_firing_alert_and_repeats_after_the_interval():
    scored = series(bucket("orders", 18, flagged=True, dim="country", value="DE"),
                    bucket("orders", 18, flagged=True, dim="country", value="FR"),
                    bucket("orders", 18, flagged=True))
    first = run(scored)  # default route: group_wait 0
    assert len(first.messages) == 1 and first.messages[0]["payload"].count('"metric": "orders"') == 3
    states = {k: v for k, v in first.states.items()}
    again = run(scored, states, NOW + dt.timedelta(hours=1))
    assert again.messages == []  # within repeat_interval (default 4h)
    repeat = run(scored, states, NOW + dt.timedelta(hours=4, seconds=1))
    assert len(repeat.messages) == 1 and repeat.counts["repeated"] == 1
    assert repeat.messages[0]["idempotency_key"] != first.messages[0]["idempotency_key"]


def test_the_same_evaluation_twice_builds_the_same_message_key():
    scored = series(bucket("orders", 18, flagged=True))
    assert run(scored).messages[0]["idempotency_key"] == run(scored).messages[0]["idempotency_key"]


def test_a_silenced_alert_sends_nothing_until_the_silence_ends():
    scored = series(bucket("quiet", 18, flagged=True))
    out = run(scored)
    (state,) = out.states.values()
    assert state["status"] == "silenced" and out.messages == []
    after = run(scored, dict(out.states), dt.datetime(2026, 11, 21, 1))
    assert [s["status"] for s in after.states.values()] == ["open"] and len(after.messages) == 1


def test_back_in_band_resolves_with_one_message_and_a_recompute_removal_resolves_too():
    firing = run(series(bucket("orders", 18, flagged=True)))
    states = dict(firing.states)
    assert firing.messages
    back = run(series(bucket("orders", 18, flagged=True), bucket("orders", 19)), states, NOW + dt.timedelta(hours=1))
    assert [s["status"] for s in back.states.values()] == ["resolved"]
    assert [m["status"] for m in back.messages] == ["resolved"]
    removed = run(series(bucket("orders", 18)), states, NOW + dt.timedelta(hours=1))
    assert [s["resolution"] for s in removed.states.values()] == ["a recompute removed the detection"]


def test_an_alert_resolved_before_its_first_message_sends_nothing():
    opened = run(series(bucket("downloads", 18, flagged=True)))
    back = run(series(bucket("downloads", 18, flagged=True), bucket("downloads", 19)), dict(opened.states),
               NOW + dt.timedelta(seconds=5))
    assert back.counts["resolved"] == 1 and back.messages == []


def test_a_new_detection_after_resolution_opens_a_new_episode():
    firing = run(series(bucket("orders", 17, flagged=True)))
    back = run(series(bucket("orders", 17, flagged=True), bucket("orders", 18)), dict(firing.states))
    again = run(series(bucket("orders", 17, flagged=True), bucket("orders", 18), bucket("orders", 19, flagged=True)),
                dict(back.states))
    (state,) = again.states.values()
    assert state["status"] == "open" and state["episode"] == 2


def test_open_within_counts_from_when_a_detection_settled():
    two_days = AlertsConfig.model_validate({**CONFIG.model_dump(exclude={"default_route", "routes", "channels",
                                                                        "silences", "retry"}),
                                            "open_within": "2d", "channels": {"log": {"type": "log", "path": "a"}},
                                            "default_route": {"channels": ["log"]}})
    # Nov 16 ended Nov 17 and settled three days later (day lookback 3): 0.5 days ago
    settled = Evaluator(two_days, METRICS, SETTLE, NOW).evaluate(series(bucket("orders", 16, flagged=True)), {})
    older = Evaluator(two_days, METRICS, SETTLE, NOW).evaluate(series(bucket("orders", 13, flagged=True)), {})
    assert len(settled.states) == 1 and older.states == {}


def test_an_alert_whose_series_moved_to_another_route_is_resolved_not_orphaned():
    scored = series(bucket("orders", 18, flagged=True))
    first = run(scored)
    (key,) = first.states
    assert key[1] == "default"
    moved = {**METRICS, "orders": MetricInfo("orders", "growth", None, (), (), 3.0)}  # now routed to `growth`
    after = Evaluator(CONFIG, moved, SETTLE, NOW + dt.timedelta(minutes=1)).evaluate(scored, dict(first.states))
    assert after.states[key]["status"] == "resolved" and after.states[(key[0], "growth")]["status"] == "open"


SEVERITY = AlertsConfig.model_validate({
    "channels": {"pager": {"type": "log", "path": "p"}, "chat": {"type": "log", "path": "c"}},
    "routes": [{"name": "pager", "match": {"severity": "critical"}, "channels": ["pager"], "group_wait": "0s",
                "group_by": ["severity"]}],
    "default_route": {"channels": ["chat"], "group_wait": "0s"},
})


def _on(config, scored, states=None, now=NOW, signals=()):
    return Evaluator(config, METRICS, SETTLE, now).evaluate(scored, dict(states or {}), list(signals))


def test_a_weaker_bucket_after_a_critical_one_keeps_the_alert_on_its_route():
    # a critical detection pages; the next bucket is still flagged, weaker: the episode goes
    # on on the pager route (it used to resolve there as "moved" and open on the default)
    first = _on(SEVERITY, series(bucket("orders", 16, flagged=True, score=-9.0)))
    (key,) = first.states
    assert key[1] == "pager" and first.states[key]["severity"] == "critical"
    later = _on(SEVERITY, series(bucket("orders", 16, flagged=True, score=-9.0),
                                 bucket("orders", 17, flagged=True, score=-4.0)), first.states, NOW + dt.timedelta(hours=1))
    assert later.counts.get("resolved", 0) == 0 and later.counts.get("opened", 0) == 0
    assert later.states[key]["status"] == "open" and later.states[key]["severity"] == "critical"
    assert later.states[key]["bucket_start"] == dt.datetime(2026, 11, 17)  # the newer detection, on the same alert


def test_an_escalation_is_sent_at_once_not_at_the_next_repeat():
    config = AlertsConfig.model_validate({"channels": {"log": {"type": "log", "path": "a"}},
                                          "default_route": {"channels": ["log"], "group_wait": "0s",
                                                            "repeat_interval": "4h"}})
    first = _on(config, series(bucket("orders", 16, flagged=True, score=-4.0)))
    assert [m["status"] for m in first.messages] == ["firing"]
    states = dict(first.states)
    (key,) = states
    assert states[key]["severity"] == "warning"
    # an hour later the next bucket is far worse: critical, and said now
    worse = _on(config, series(bucket("orders", 16, flagged=True, score=-4.0),
                               bucket("orders", 17, flagged=True, score=-25.0)), states, NOW + dt.timedelta(hours=1))
    assert worse.states[key]["severity"] == "critical"
    assert [m["status"] for m in worse.messages] == ["firing"]
    assert worse.messages[0]["idempotency_key"] != first.messages[0]["idempotency_key"]


def test_a_pipeline_alert_whose_route_was_removed_is_resolved_not_orphaned():
    from dagster_project.alerting.engine import Signal
    config = AlertsConfig.model_validate({
        "channels": {"log": {"type": "log", "path": "a"}},
        "routes": [{"name": "pipeline", "match": {"kind": "freshness"}, "channels": ["log"], "group_wait": "0s"}],
        "default_route": {"channels": ["log"]}})
    stale = Signal("freshness", "raw.orders", True, reason="no row for 9h")
    first = _on(config, None, signals=[stale])
    (key,) = first.states
    assert key[1] == "pipeline"
    renamed = AlertsConfig.model_validate({
        "channels": {"log": {"type": "log", "path": "a"}},
        "routes": [{"name": "pipes", "match": {"kind": "freshness"}, "channels": ["log"], "group_wait": "0s"}],
        "default_route": {"channels": ["log"]}})
    fresh = Signal("freshness", "raw.orders", False, reason="back to normal")
    after = _on(renamed, None, first.states, NOW + dt.timedelta(hours=1), [fresh])
    assert after.states[key]["status"] == "resolved" and "not in alerts.yml" in after.states[key]["resolution"]


def test_a_group_with_a_metric_and_a_pipeline_alert_sends_one_message_per_kind():
    from dagster_project.alerting.engine import Signal
    critical = bucket("orders", 18, flagged=True, score=-9.0)
    out = _on(SEVERITY, series(critical), signals=[Signal("freshness", "raw.orders", True, reason="no row for 9h")])
    # both critical: the pager's group `severity=critical` holds the two
    assert {(m["route"], m["group_key"]) for m in out.messages} == {("pager", "severity=critical")}, out.messages
    assert sorted(m["kind"] for m in out.messages) == ["anomaly", "freshness"], out.messages


def test_a_month_detection_ages_by_the_calendar_not_by_31_days():
    # February 2026 ended on March 1 and settled a month later (month lookback 1), on
    # April 1; open_within for months is 3 x 31 days. Counted in 31-day months, it settled
    # on April 4 and opened three days past its open_within
    config = AlertsConfig.model_validate({"channels": {"log": {"type": "log", "path": "a"}},
                                          "default_route": {"channels": ["log"]}})
    feb = Scored("orders", "month", "", "", dt.datetime(2026, 2, 1), 10.0, 100.0, 80.0, 120.0, 8.0, True, "down",
                 False, "orders low")
    limit = dt.datetime(2026, 4, 1) + dt.timedelta(days=93)
    opened = Evaluator(config, METRICS, SETTLE, limit).evaluate(series(feb), {})
    later = Evaluator(config, METRICS, SETTLE, limit + dt.timedelta(days=1)).evaluate(series(feb), {})
    assert len(opened.states) == 1 and later.states == {}


def test_a_critical_alert_that_moves_route_stays_critical_there():
    # the pager route is renamed while a critical alert is open and the next bucket is
    # weaker: the new route's alert holds the episode's severity, and stays put after
    first = _on(SEVERITY, series(bucket("orders", 16, flagged=True, score=-9.0)))
    renamed = AlertsConfig.model_validate({
        "channels": {"pager": {"type": "log", "path": "p"}, "chat": {"type": "log", "path": "c"}},
        "routes": [{"name": "pager2", "match": {"severity": "critical"}, "channels": ["pager"], "group_wait": "0s"}],
        "default_route": {"channels": ["chat"], "group_wait": "0s"}})
    rows = series(bucket("orders", 16, flagged=True, score=-9.0), bucket("orders", 17, flagged=True, score=-4.0))
    moved = _on(renamed, rows, first.states, NOW + dt.timedelta(hours=1))
    (key,) = {k[0] for k in moved.states}
    assert moved.states[(key, "pager")]["status"] == "resolved"
    assert moved.states[(key, "pager2")]["status"] == "open" and moved.states[(key, "pager2")]["severity"] == "critical"
    states = {**first.states, **moved.states}
    after = _on(renamed, rows, states, NOW + dt.timedelta(hours=2))
    assert after.counts.get("opened", 0) == 0 and after.counts.get("resolved", 0) == 0, after.lines


def test_a_silence_added_while_a_failed_run_alert_is_open_holds_it_without_a_new_signal():
    """A failed job sends no new signal until it runs again: a silence added meanwhile was
    never applied, and the alert kept repeating."""
    from dagster_project.alerting.engine import Signal
    base = {"channels": {"log": {"type": "log", "path": "a"}},
            "default_route": {"channels": ["log"], "group_wait": "0s", "repeat_interval": "1h"}}
    failed = Signal("run_failure", "rollups_day_job", True, "critical", "run 1 failed", NOW, {}, {"grain": "day"})
    first = _on(AlertsConfig.model_validate(base), None, signals=[failed])
    assert [m["status"] for m in first.messages] == ["firing"]
    silenced = AlertsConfig.model_validate({**base, "silences": [
        {"match": {"kind": "run_failure", "grain": "day"}, "starts": "2026-11-20T12:10:00Z",
         "ends": "2026-11-21T12:00:00Z", "comment": "maintenance"}]})
    later = _on(silenced, None, first.states, NOW + dt.timedelta(hours=2))
    (state,) = later.states.values()
    assert state["status"] == "silenced" and state["silence"] == "maintenance" and later.messages == []
    # the silence ends: the alert is open again and repeats
    after = _on(silenced, None, later.states, NOW + dt.timedelta(days=1, hours=1))
    (state,) = after.states.values()
    assert state["status"] == "open" and [m["status"] for m in after.messages] == ["firing"]


def test_an_alert_on_a_dimension_the_metric_no_longer_has_is_resolved():
    """After `dimensions: [country]` became `[refunded]`, the country slices are scored no
    more: an alert open on one (often a 'drop to 0' of the old slice) got no bucket that
    could resolve it, and stayed open."""
    from dataclasses import replace
    opened = run(series(bucket("orders", 18, flagged=True, dim="country", value="DE")))
    (key,) = opened.states
    assert opened.states[key]["status"] == "open"
    changed = {**METRICS, "orders": replace(METRICS["orders"], dimensions=("refunded",))}
    out = Evaluator(CONFIG, changed, SETTLE, NOW + dt.timedelta(hours=1)).evaluate({}, dict(opened.states))
    assert out.states[key]["status"] == "resolved"
    assert out.states[key]["resolution"] == "the metric no longer has the dimension `country`"
    # while the metric still has it, a series without new rows stays open
    kept = Evaluator(CONFIG, {**METRICS, "orders": replace(METRICS["orders"], dimensions=("country",))}, SETTLE,
                     NOW + dt.timedelta(hours=1)).evaluate({}, dict(opened.states))
    assert key not in kept.states or kept.states[key]["status"] == "open"

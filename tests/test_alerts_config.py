"""alerts.yml is validated like metric YAML (file:line, part of `metrics validate`, JSON
Schema), and `metrics silence add` edits it without losing a comment."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from dagster_project.alerting.config import AlertsConfig, parse_duration
from dagster_project.alerting.load import load_alerts
from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT, ProjectPaths
from dagster_project.spec.schema import DURATION_PATTERN, render_alerts_schema
from dagster_project.validation.project import load_project

from .conftest import make_project

GOOD = {
    "growth/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                            "tags: [kpi]\nalerts: [growth-slack]\n",
}

ALERTS = """\
# channels first
channels:
  growth-slack: {type: slack, url: "${SLACK_WEBHOOK_URL}"}
  audit-log: {type: log, path: warehouse/alerts.log}
routes:
  - name: growth-slack
    match: {tag: kpi}
    channels: [growth-slack]
    group_wait: 1m
    repeat_interval: 4h
default_route: {channels: [audit-log]}
# nothing silenced yet
silences: []   # keep this comment
retry: {first: 5s, max: 30m}  # last line comment
"""


def _with_channel(entry: str) -> str:
    """ALERTS with one more channel, at line 5."""
    return ALERTS.replace("  audit-log: {type: log, path: warehouse/alerts.log}",
                          "  audit-log: {type: log, path: warehouse/alerts.log}\n  " + entry)


def _project(tmp_path, alerts: str | None = ALERTS, metrics: dict | None = None) -> ProjectPaths:
    paths = make_project(tmp_path / "p", metrics or GOOD)
    if alerts is not None:
        (paths.root / "alerts.yml").write_text(alerts)
    return paths


def _validate(paths, capsys, *only) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--project-dir", str(paths.root), "validate", *only])
    return code, capsys.readouterr().err


def test_shipped_alerts_yml_is_valid_and_names_every_route_the_metrics_use():
    config, issues = load_alerts(ProjectPaths(REPO_ROOT))
    assert issues == [] and config.channels and config.default_route is not None
    result = load_project(ProjectPaths(REPO_ROOT))
    assert result.ok and result.alerts == config and result.project.alerts == config
    used = {r for m in result.project.metrics.values() for r in m.alerts}
    assert used and used <= {r.name for r in config.routes}
    downloads = result.project.metrics["model_downloads"]
    assert config.routes_for({"metric": downloads.name, "domain": downloads.domain}, downloads.alerts)[0].name == "growth-slack"


def test_valid_project_loads_alerts_and_tags(tmp_path, capsys):
    paths = _project(tmp_path)
    assert _validate(paths, capsys) == (0, "")
    project = load_project(paths).project
    assert project.metrics["downloads"].tags == ("kpi",)
    assert project.alerts.routes[0].group_wait == dt.timedelta(minutes=1)
    assert project.alerts.retry.delay(3) == dt.timedelta(seconds=20)


def test_missing_alerts_yml_is_an_empty_configuration(tmp_path, capsys):
    paths = _project(tmp_path, alerts=None)
    assert load_alerts(paths) == (AlertsConfig(), [])
    # no alerts.yml: alerting is not set up, route names are not checked
    assert _validate(paths, capsys)[0] == 0


BAD = [
    ("yaml", ALERTS.replace("routes:\n", "routes: [\n"), 6, "invalid YAML"),
    ("unknown_field", ALERTS.replace("    group_wait", "    group_wiat"), 9, "unknown field `routes.0.group_wiat` (did you mean `group_wait`?)"),
    ("channel_field", ALERTS.replace("url:", "ulr:"), 3, "unknown field `channels.growth-slack.ulr` (did you mean `url`?)"),
    ("channel_type", ALERTS.replace("type: slack", "type: slak"), 3, "`channels.growth-slack.type`: `slak` is not one of"),
    ("duration", ALERTS.replace("4h", "4 hours"), 10, "`routes.0.repeat_interval`: not a duration"),
    ("env_reference", ALERTS.replace('"${SLACK_WEBHOOK_URL}"', '"${SLACK_WEBHOOK_URL"'), 3,
     "`channels.growth-slack.url`: a `$` must start an environment reference"),
    ("unknown_channel", ALERTS.replace("channels: [growth-slack]", "channels: [growth-slak]"), 8,
     "`routes[0].channels[0]`: unknown channel `growth-slak` (did you mean `growth-slack`?)"),
    ("unknown_default_channel", ALERTS.replace("[audit-log]", "[audit]"), 11,
     "`default_route.channels[0]`: unknown channel `audit` (did you mean `audit-log`?)"),
    ("duplicate_route", ALERTS.replace("default_route:", "  - {name: growth-slack, channels: [audit-log]}\ndefault_route:"), 11,
     "route `growth-slack` is already defined at line 6"),
    ("route_named_default", ALERTS.replace("default_route:", "  - {name: default, channels: [audit-log]}\ndefault_route:"), 11,
     "route name `default` is taken by `default_route:`"),
    ("silence_order", ALERTS.replace("silences: []", "silences:\n  - {match: {metric: x}, starts: 2026-02-01, ends: 2026-01-01}"), 14,
     "ends must be after starts"),
    ("match_key", ALERTS.replace("match: {tag: kpi}", "match: {tags: kpi}"), 7, "unknown field `routes.0.match.tags` (did you mean `tag`?)"),
    # 2**n of a day, or now minus 200,000 weeks, overflow Python's dates
    ("huge_duration", ALERTS.replace("4h", "99999999999d"), 10, "`routes.0.repeat_interval`: a duration of at most 10 years"),
    ("zero_repeat", ALERTS.replace("4h", "0s"), 10, "`routes.0.repeat_interval`: must be more than 0s"),
    # a label with a few values: one outside them matches nothing, ever
    ("match_grain", ALERTS.replace("match: {tag: kpi}", "match:\n      tag: kpi\n      grain: [day, dya]"), 9,
     "`routes.0.match.grain`: `dya` matches no grain (one of: hour, day, week, month)"),
    ("match_empty", ALERTS.replace("match: {tag: kpi}", "match: {tag: []}"), 7,
     "`routes.0.match.tag`: an empty list matches nothing"),
    # passed, then every evaluation failed on the outbox's key (nothing delivered on any route)
    ("channel_twice", ALERTS.replace("channels: [growth-slack]", "channels: [growth-slack, audit-log, growth-slack]"),
     8, "`routes.0.channels`: `growth-slack` is listed more than once"),
    # a log file is written under the project root only
    ("log_outside", ALERTS.replace("path: warehouse/alerts.log", "path: ../../elsewhere/alerts.log"), 4,
     "`channels.audit-log.path`: must stay inside the project"),
    # credentials written in clear: a Slack webhook URL is one, so is an Authorization header
    ("slack_url_in_clear", ALERTS.replace('"${SLACK_WEBHOOK_URL}"', '"https://hooks.slack.com/services/T0/B0/XYZ"'), 3,
     "`channels.growth-slack.url`: a Slack webhook URL is a secret"),
    ("auth_header_in_clear", ALERTS.replace("  audit-log: {type: log, path: warehouse/alerts.log}",
                                            "  audit-log: {type: log, path: warehouse/alerts.log}\n  hook: {type: webhook, "
                                            "url: \"http://h/x\", headers: {Authorization: \"Bearer sk_live_1\"}}"), 5,
     "header `Authorization` carries a credential"),
    ("log_absolute", ALERTS.replace("path: warehouse/alerts.log", "path: /tmp/alerts.log"), 4,
     "`channels.audit-log.path`: must stay inside the project"),
    # a line break in a header or an address failed every send, retried without end
    ("header_line_break", _with_channel('hook: {type: webhook, url: "http://h/x", headers: {X-Team: "a\\r\\nX-Evil: 1"}}'), 5,
     "header `X-Team`: its value holds a line break"),
    ("header_name_space", _with_channel('hook: {type: webhook, url: "http://h/x", headers: {"Bad Name": v}}'), 5,
     "header name `Bad Name` may hold only letters"),
    ("address_line_break", _with_channel('mail: {type: email, to: ["oncall@example.com\\r\\nBcc: evil@x.com"]}'), 5,
     "an address holds a line break"),
    ("not_an_address", _with_channel('mail: {type: email, to: [not-an-email]}'), 5,
     "`not-an-email` is not an email address"),
    # `path: alerts.yml` appended JSON to alerts.yml: the next evaluation could not read it
    ("log_onto_alerts_yml", ALERTS.replace("path: warehouse/alerts.log", "path: alerts.yml"), 4,
     "would write into the project's own files or folders"),
    ("log_into_metrics", ALERTS.replace("path: warehouse/alerts.log", "path: metrics/alerts.log"), 4,
     "would write into the project's own files or folders"),
    ("log_onto_a_folder", ALERTS.replace("path: warehouse/alerts.log", "path: ."), 4,
     "would write into the project's own files or folders"),
    ("file_url", _with_channel('hook: {type: webhook, url: "file:///etc/hostname"}'), 5,
     "an alert URL starts with http:// or https://"),
    ("url_with_password", _with_channel('hook: {type: webhook, url: "https://admin:hunter2@x.example.com/"}'), 5,
     "a URL cannot carry a user and password"),
    ("slack_url_on_a_webhook", _with_channel('hook: {type: webhook, url: "https://hooks.slack.com/services/T0/B0/XYZ"}'), 5,
     "a Slack webhook URL is a secret"),
    # `repeat_interval: 4` repeated every 4 seconds, not 4 hours
    ("bare_number_duration", ALERTS.replace("repeat_interval: 4h", "repeat_interval: 4"), 10,
     "a duration needs its unit: write e.g. 4s, 4m or 4h"),
    # an empty match silenced every alert (`metrics silence add` refuses one)
    ("silence_without_match", ALERTS.replace("silences: []   # keep this comment",
                                             "silences: [{match: {}, starts: 2026-11-01, ends: 2027-01-01}]"), 13,
     "a silence's `match` names at least one key"),
    ("silence_with_a_null_key", ALERTS.replace("silences: []   # keep this comment",
                                               "silences: [{match: {metric: }, starts: 2026-11-01, ends: 2027-01-01}]"), 13,
     "a silence's `match` names at least one key"),
    ("log_folder", ALERTS.replace("path: warehouse/alerts.log", "path: logs/"), 4,
     "would write into the project's own files or folders"),
    ("negative_duration", ALERTS.replace("repeat_interval: 4h", "repeat_interval: -5"), 10,
     "a duration cannot be negative"),
    ("javascript_dagster_url", "dagster_url: 'javascript:alert(1)//'\n" + ALERTS, 1,
     "`dagster_url`: must be an http:// or https:// URL"),
    # an offset taking a time past year 9999 in UTC was an OverflowError in validate,
    # series, evaluate and the Dagster definitions
    ("silence_beyond_9999", ALERTS.replace("silences: []   # keep this comment",
                                           "silences: [{match: {metric: x}, starts: 2026-12-24T00:00:00Z, "
                                           "ends: '9999-12-31T23:00:00-05:00'}]"), 13,
     "in UTC falls outside the years 1 to 9999"),
    # a bare number was read as Unix seconds: 20261224 is 1970-08-23
    ("silence_as_a_number", ALERTS.replace("silences: []   # keep this comment",
                                           "silences: [{match: {metric: x}, starts: 20261224, ends: 20261227}]"), 13,
     "is a timestamp (2026-12-24T00:00:00Z) or a date (2026-12-24), not a number"),
    ("silence_as_a_quoted_number", ALERTS.replace("silences: []   # keep this comment",
                                                  "silences: [{match: {metric: x}, starts: '20261224', ends: '1700000000'}]"),
     13, "is a timestamp (2026-12-24T00:00:00Z) or a date (2026-12-24), not a number"),
]


def test_a_url_or_header_value_in_an_error_is_not_echoed(tmp_path, capsys):
    """`validate` printed `(got 'https://hooks.slack.com/services/T000/B000/XXXXSECRET')`."""
    for entry, secret in (('hook: {type: webhook, url: "https://admin:hunter2@x.example.com/?token=SEKRET"}', "hunter2"),
                          ('hook: {type: webhook, url: "https://hooks.slack.com/services/T0/B0/XXXXSECRET"}', "XXXXSECRET"),
                          ('hook: {type: webhook, url: "http://h/x", headers: {X-Team: "SEKRET\\r\\n"}}', "SEKRET")):
        paths = _project(tmp_path / secret, _with_channel(entry))
        code, err = _validate(paths, capsys)
        assert code == 1 and "alerts.yml:5: " in err and secret not in err, err


def test_every_alerts_yml_problem_in_one_run_at_its_line(tmp_path, capsys):
    """The route checks (unknown channel, a route name twice) came only after the field
    errors were fixed, and a bad channel name was reported at `channels:`."""
    text = (ALERTS.replace("  audit-log: {type: log, path: warehouse/alerts.log}",
                           "  audit-log: {type: log, path: warehouse/alerts.log}\n  bad name: {type: log, path: a.log}")
            .replace("    repeat_interval: 4h\n", "    repeat_interval: 4 hours\n  - name: growth-slack\n"
                     "    channels: [nope]\n"))
    paths = _project(tmp_path, text)
    code, err = _validate(paths, capsys)
    assert code == 1
    lines = [line.removeprefix("alerts.yml:") for line in err.splitlines() if line.startswith("alerts.yml:")]
    assert len(lines) == 4, err
    assert lines[0].startswith("5: `channels`: channel name `bad name`"), err
    assert lines[1].startswith("11: `routes.0.repeat_interval`: not a duration"), err
    assert lines[2].startswith("12: route `growth-slack` is already defined at line 7"), err
    assert lines[3].startswith("13: `routes[1].channels[0]`: unknown channel `nope`"), err


@pytest.mark.parametrize("name,text,line,words", BAD, ids=[b[0] for b in BAD])
def test_alerts_yml_problems_have_file_and_line(tmp_path, capsys, name, text, line, words):
    paths = _project(tmp_path, text)
    config, issues = load_alerts(paths)
    assert config == AlertsConfig() and issues
    code, err = _validate(paths, capsys)
    assert code == 1
    assert f"alerts.yml:{line}: " in err and words in err, err
    assert load_project(paths).project is None


def test_metric_naming_an_unknown_route_fails_at_its_line(tmp_path, capsys):
    metrics = {"growth/downloads.yml": GOOD["growth/downloads.yml"].replace("[growth-slack]", "[default, growth-slak]")}
    paths = _project(tmp_path, metrics=metrics)
    code, err = _validate(paths, capsys)
    assert code == 1
    assert "metrics/growth/downloads.yml:6: alerts[1]: unknown route `growth-slak` (did you mean `growth-slack`?)" in err, err
    assert "alerts[0]" not in err  # `default` names default_route


def test_only_filter_still_reports_alerts_yml(tmp_path, capsys):
    paths = _project(tmp_path, ALERTS.replace("[audit-log]", "[audit]"),
                     metrics={**GOOD, "other/users.yml": "name: users\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"})
    code, err = _validate(paths, capsys, str(paths.metrics_dir / "other"))
    assert code == 1 and "alerts.yml:11:" in err


def test_the_retry_delay_doubles_up_to_its_cap_for_any_number_of_attempts():
    from dagster_project.alerting.config import Retry
    retry = Retry()  # 10 s, doubling, at most 1 h
    assert [retry.delay(n).total_seconds() for n in (1, 2, 3)] == [10, 20, 40]
    # a channel down for days: attempt 44 used to overflow (10 s * 2**43) and stop every delivery
    assert retry.delay(44) == retry.delay(10 ** 6) == dt.timedelta(hours=1)


def test_durations_parse():
    assert parse_duration("30s") == dt.timedelta(seconds=30)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("2d") == dt.timedelta(days=2) and parse_duration("1w") == dt.timedelta(weeks=1)
    assert parse_duration(0) == dt.timedelta(0)
    # a bare number was seconds: `repeat_interval: 4` repeated every 4 s, not 4 h
    with pytest.raises(ValueError, match="a duration needs its unit: write e.g. 90s, 90m or 90h"):
        parse_duration(90)
    for bad in ("", "4 hours", "h", "-1s", -5, 4.5):
        with pytest.raises(ValueError):
            parse_duration(bad)
    import re
    assert all(re.match(DURATION_PATTERN, t) for t in ("30s", "1h30m", "2d", "1w"))
    assert not any(re.match(DURATION_PATTERN, t) for t in ("", " ", "4 hours", "PT4H"))


def _digest(paths):
    return (paths.root / "alerts.yml").read_bytes() if (paths.root / "alerts.yml").exists() else None


def test_silence_add_keeps_comments_and_validates(tmp_path, capsys):
    paths = _project(tmp_path)
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "metric=downloads", "--match", "grain=day",
                 "--from", "2026-12-24", "--until", "2099-12-27T00:00Z", "--comment", "holiday: \"quiet\"",
                 "--created-by", "ana"]) == 0
    out = capsys.readouterr().out
    assert "2099-12-27T00:00:00Z" in out
    text = (paths.root / "alerts.yml").read_text()
    for line in ALERTS.splitlines():
        if "#" in line:
            assert line.split("#", 1)[1] in text  # every comment survives
    assert text.startswith("# channels first\nchannels:\n")
    config, issues = load_alerts(paths)
    assert issues == []
    (silence,) = config.silences
    assert silence.match.metric == "downloads" and silence.match.grain == "day" and silence.created_by == "ana"
    assert silence.starts == dt.datetime(2026, 12, 24) and silence.ends == dt.datetime(2099, 12, 27)
    assert silence.comment == 'holiday: "quiet"'
    # a second one goes after the first, in the block list the first one made
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "tag=kpi",
                 "--until", "2099-01-01T00:00:00Z", "--comment", "again"]) == 0
    config, issues = load_alerts(paths)
    assert issues == [] and [s.comment for s in config.silences] == ['holiday: "quiet"', "again"]
    assert (paths.root / "alerts.yml").read_text().endswith("retry: {first: 5s, max: 30m}  # last line comment\n")
    assert _validate(paths, capsys)[0] == 0
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "silence", "list"]) == 0
    listed = capsys.readouterr().out
    assert "active" in listed and "future" in listed and "metric=downloads grain=day" in listed


def test_silence_add_creates_alerts_yml(tmp_path, capsys):
    paths = _project(tmp_path, alerts=None)
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "domain=growth",
                 "--until", "2099-01-01", "--comment", "c"]) == 0
    config, issues = load_alerts(paths)
    assert issues == [] and config.silences[0].match.domain == "growth"


@pytest.mark.parametrize("args,words", [
    (["--match", "metrc=downloads"], "unknown key `metrc` (did you mean `metric`?); keys: metric, domain, owner"),
    (["--match", "metric"], "--match takes KEY=VALUE"),
    (["--match", "metric=x", "--until", "2099-13-01"], "is not a timestamp"),
    (["--match", "metric=x", "--until", "2020-01-01"], "is in the past"),
    (["--match", "metric=x", "--from", "2099-02-01", "--until", "2099-01-01"], "must be after the start"),
    (["--match", "kind=anomly"], "--match kind: `anomly` matches no kind (one of: anomaly, freshness, run_failure)"),
    (["--match", "metric=x", "--until", "9999-12-31T23:59:59-10:00"], "in UTC falls outside the years 1 to 9999"),
])
def test_silence_add_user_mistakes_change_nothing(tmp_path, capsys, args, words):
    paths = _project(tmp_path)
    before = _digest(paths)
    argv = ["--project-dir", str(paths.root), "silence", "add", "--comment", "c", *args]
    if "--until" not in args:
        argv += ["--until", "2099-01-01"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "nothing written" in err and "Traceback" not in err, err
    assert _digest(paths) == before


def test_silence_add_warns_of_a_domain_owner_or_tag_no_metric_has(tmp_path, capsys):
    """A silence on a misspelt domain, owner or tag silences nothing; only a misspelt metric
    was named. A warning, written anyway: the value may belong to a metric still to come."""
    paths = _project(tmp_path)
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "domain=grwoth", "--match", "tag=kpi",
                 "--match", "owner=nobody@example.com", "--until", "2099-01-01", "--comment", "c"]) == 0
    err = capsys.readouterr().err
    assert "warning: domain `grwoth` matches no domain of this project (did you mean `growth`?)" in err, err
    assert "warning: owner `nobody@example.com` matches no owner of this project" in err, err
    assert "tag" not in err  # downloads has the tag kpi
    assert [s.match.domain for s in load_alerts(paths)[0].silences] == ["grwoth"]
    # with a metric file that does not validate, the domains are not known: it says so
    (paths.metrics_dir / "growth" / "broken.yml").write_text("name: broken\naggregation: cnt\n")
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "domain=comerce",
                 "--until", "2099-01-01", "--comment", "c"]) == 0
    err = capsys.readouterr().err
    assert "note: the project does not validate (metrics validate): domain not checked against its metrics" in err, err


def test_a_silence_written_before_that_can_never_match_still_loads(tmp_path, capsys):
    """A route that can never match is an error; a silence that cannot is harmless (an old
    one, written before `silence add` refused them, must not stop every command)."""
    paths = _project(tmp_path, ALERTS.replace(
        "silences: []", "silences:\n  - {match: {grain: daily}, starts: 2026-01-01, ends: 2026-02-01}"))
    config, issues = load_alerts(paths)
    assert issues == [] and config.silences[0].match.grain == "daily"
    assert _validate(paths, capsys)[0] == 0


def test_silence_add_refuses_an_invalid_alerts_yml(tmp_path, capsys):
    """Exit 2, as for every mistake README lists for `silence add` (it was 1)."""
    paths = _project(tmp_path, ALERTS.replace("[audit-log]", "[audit]"))
    before = _digest(paths)
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "metric=x", "--until", "2099-01-01",
                 "--comment", "c"]) == 2
    assert "alerts.yml:11:" in capsys.readouterr().err and _digest(paths) == before


def test_silence_add_through_the_installed_script(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    paths = _project(tmp_path)
    exe = Path(sys.executable).parent / "metrics"
    cmd = [str(exe), "--project-dir", str(paths.root), "silence", "add", "--match", "metric=downloads",
           "--until", "2099-01-01T00:00Z", "--comment", "from a script"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "from a script" in (paths.root / "alerts.yml").read_text()
    done = subprocess.run([str(exe), "--project-dir", str(paths.root), "validate"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_silence_adds_at_once_keep_every_silence(tmp_path):
    """Each read alerts.yml, added its entry and replaced the file: of two at once, one
    silence was lost while both said "added"."""
    import subprocess
    import sys
    paths = _project(tmp_path)
    cmds = [[sys.executable, "-m", "dagster_project.cli.main", "--project-dir", str(paths.root), "silence", "add",
             "--match", f"metric=m{i}", "--until", "2099-01-01T00:00Z", "--comment", f"c{i}"] for i in range(6)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    config, issues = load_alerts(paths)
    assert issues == [] and sorted(s.comment for s in config.silences) == [f"c{i}" for i in range(6)]


def test_committed_alerts_schema_is_current_and_check_covers_it(tmp_path, capsys):
    assert (REPO_ROOT / "docs" / "alerts.schema.json").read_text() == render_alerts_schema()
    schema = json.loads(render_alerts_schema())
    wait = schema["$defs"]["Route"]["properties"]["group_wait"]
    # a text with its unit, or the number 0 (a bare 4 was seconds in the schema and an error in validate)
    assert wait["anyOf"] == [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}] and wait["default"] == "30s"
    assert schema["additionalProperties"] is False
    paths = _project(tmp_path)
    (paths.root / "docs").mkdir()
    shutil.copy(REPO_ROOT / "docs" / "metric.schema.json", paths.root / "docs")
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "schema", "--check"]) == 1
    assert "docs/alerts.schema.json is stale" in capsys.readouterr().err
    assert main(["--project-dir", str(paths.root), "schema"]) == 0
    assert main(["--project-dir", str(paths.root), "schema", "--check"]) == 0


def test_default_route_with_a_name_and_a_literal_secret_are_errors_at_their_lines(tmp_path):
    from dagster_project.alerting.load import load_alerts
    from dagster_project.paths import ProjectPaths
    (tmp_path / "alerts.yml").write_text(
        "channels:\n"
        "  hook: {type: webhook, url: 'http://127.0.0.1:9/x', secret: plain-text-secret}\n"
        "default_route:\n"
        "  name: fallback\n"
        "  channels: [hook]\n")
    _, issues = load_alerts(ProjectPaths(tmp_path))
    text = "\n".join(map(str, issues))
    assert "alerts.yml:2:" in text and "environment reference" in text
    assert "alerts.yml:3:" in text and "default_route takes no `name`" in text
    assert "plain-text-secret" not in text  # a secret typed in by mistake is not echoed to CI logs


def test_forms_that_worked_before_still_validate(tmp_path, capsys):
    """The checks of URLs, addresses and log paths refused these: a Slack URL whose secret
    part is a reference, an address with a display name, a log file in a folder."""
    text = _with_channel('slack2: {type: slack, url: "https://hooks.slack.com/services/${SLACK_PATH}"}').replace(
        "  audit-log: {type: log, path: warehouse/alerts.log}",
        "  audit-log: {type: log, path: logs/alerts.jsonl}\n"
        "  mail: {type: email, to: [\"Ops <ops@example.com>\"], from: \"Metric Alerts <alerts@example.com>\"}")
    paths = _project(tmp_path, text)
    assert _validate(paths, capsys) == (0, "")
    config, _ = load_alerts(paths)
    assert config.channels["mail"].to == ["Ops <ops@example.com>"]


def test_a_silence_written_by_hand_or_shown_keeps_a_four_digit_year():
    """strftime's %Y wrote year 1 as `1-01-01T00:00:00Z`, which is no YAML timestamp."""
    from dagster_project.cli.silence import _stamp
    assert _stamp(dt.datetime(1, 1, 1)) == "0001-01-01T00:00:00Z"
    assert _stamp(dt.datetime(2026, 12, 24, 5, 6, 7)) == "2026-12-24T05:06:07Z"


def test_silence_add_edits_a_symlinked_alerts_yml_where_it_lives(tmp_path, capsys):
    """The edit replaced the link with a regular file: the shared file was left as it was,
    and the project's copy lost its mode."""
    import os
    paths = _project(tmp_path / "p")
    shared = tmp_path / "shared" / "alerts.yml"
    shared.parent.mkdir()
    shutil.move(str(paths.root / "alerts.yml"), shared)
    os.chmod(shared, 0o640)
    (paths.root / "alerts.yml").symlink_to(shared)
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "metric=downloads",
                 "--until", "2099-01-01", "--comment", "shared"]) == 0
    assert (paths.root / "alerts.yml").is_symlink()
    assert "comment: \"shared\"" in shared.read_text() and shared.stat().st_mode & 0o777 == 0o640


def test_silence_add_through_a_dangling_link_is_a_clear_error(tmp_path, capsys):
    paths = _project(tmp_path / "p")
    (paths.root / "alerts.yml").unlink()
    (paths.root / "alerts.yml").symlink_to(tmp_path / "gone" / "alerts.yml")
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "silence", "add", "--match", "metric=downloads",
                 "--until", "2099-01-01", "--comment", "x"]) == 2
    err = capsys.readouterr().err
    assert "whose folder does not exist" in err and "Traceback" not in err, err
    assert (paths.root / "alerts.yml").is_symlink()

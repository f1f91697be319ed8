"""Kubeflow's six-field cron: what robfig/cron v1.2 accepts, clear errors, and the local crontab form."""

import pytest

from tlpipe.pipeline.cron import CronError, crontab_line, parse_cron, to_crontab

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("expression, field, values", [
    ("0 0 3 * * *", "hours", {3}),
    ("*/15 0 0 * * *", "seconds", {0, 15, 30, 45}),
    ("0 5/20 0 * * *", "minutes", {5, 25, 45}),  # 'N/S' runs from N to the maximum
    ("0 0 1-10/3 * * *", "hours", {1, 4, 7, 10}),
    ("0 0 0 1,15 * *", "day-of-month", {1, 15}),
    ("0 0 0 ? JAN-mar *", "month", {1, 2, 3}),
    ("0 0 0 ? * MON-fri", "day-of-week", {1, 2, 3, 4, 5}),
    ("0 0 0 ? * sun,sat", "day-of-week", {0, 6}),
    ("0 0 0 * * ?", "day-of-week", set(range(7))),
    ("+5 0 0 * * *", "seconds", {5}),  # Go's Atoi takes a '+' sign
])
def test_accepts_what_kubeflow_accepts(expression, field, values):
    assert parse_cron(expression).values(field) == values


def test_normalises_whitespace_of_what_is_sent():
    assert parse_cron("  0  0 3\t* * *\n").expression == "0 0 3 * * *"
    assert parse_cron(" @every   1h30m ").expression == "@every 1h30m"


@pytest.mark.parametrize("descriptor, hours, weekdays", [
    ("@daily", {0}, set(range(7))),
    ("@midnight", {0}, set(range(7))),
    ("@weekly", {0}, {0}),
    ("@hourly", set(range(24)), set(range(7))),
])
def test_descriptors_mean_robfigs_schedules(descriptor, hours, weekdays):
    schedule = parse_cron(descriptor)
    assert schedule.expression == descriptor
    assert schedule.values("hours") == hours and schedule.values("day-of-week") == weekdays


def test_every_takes_go_durations():
    assert parse_cron("@every 1h30m").every_seconds == 5400
    assert parse_cron("@every 1.5h").every_seconds == 5400
    assert parse_cron("@every 90s").every_seconds == 90


@pytest.mark.parametrize("expression, position, name, received, allowed", [
    ("0 0 24 * * *", 3, "hours", "24", "0-23"),
    ("60 0 0 * * *", 1, "seconds", "60", "0-59"),
    ("0 0 0 0 * *", 4, "day-of-month", "0", "1-31"),
    ("0 0 0 * 13 *", 5, "month", "13", "names jan-dec"),
    ("0 0 0 * * 7", 6, "day-of-week", "7", "0 = Sunday"),
    ("0 0 0 * * funday", 6, "day-of-week", "funday", "names sun-sat"),
    ("0 0 0 L * *", 4, "day-of-month", "L", "1-31"),
    ("0 0 10-2 * * *", 3, "hours", "10-2", "0-23"),
    ("*/0 0 0 * * *", 1, "seconds", "*/0", "*/S"),
    ("1/2/3 0 0 * * *", 1, "seconds", "1/2/3", "A-B/S"),
    ("1-2-3 0 0 * * *", 1, "seconds", "1-2-3", "A-B"),
    ("0 0 3 1,,2 * *", 4, "day-of-month", "1,,2", "comma-separated"),
    ("0 0 3 *-2 * *", 4, "day-of-month", "*-2", "'*' or '?'"),
    ("0 0 -1 * * *", 3, "hours", "-1", "0-23"),
])
def test_a_bad_field_is_named_with_the_value_and_what_it_allows(expression, position, name, received, allowed):
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    message = str(caught.value)
    assert f"field {position} ({name}) received {received!r}" in message
    assert allowed in message.split("allowed:")[1]


def test_five_fields_are_refused_with_the_six_field_form_to_use():
    with pytest.raises(CronError) as caught:
        parse_cron("0 3 * * *")
    message = str(caught.value)
    assert "has 5 field(s)" in message and "seconds minutes hours day-of-month month day-of-week" in message
    assert "'0 0 3 * * *'" in message


@pytest.mark.parametrize("expression, needle", [
    ("", "empty"),
    ("0 0 0 * * * *", "has 7 field(s)"),
    ("@Daily", "unknown descriptor '@Daily'"),
    ("@daily 5", "unknown descriptor"),
    ("@every 10 minutes", "received duration '10 minutes'"),
    ("@every 500ms", "below one second"),
])
def test_other_malformed_expressions(expression, needle):
    with pytest.raises(CronError, match="allowed") as caught:
        parse_cron(expression)
    assert needle in str(caught.value)


@pytest.mark.parametrize("expression, fields, delay", [
    ("0 0 3 * * *", "0 3 * * *", 0),
    ("0 30 2 ? JAN-mar mon-FRI", "30 2 * 1-3 1-5", 0),
    ("0 5/20 */6 1,15 * *", "5-59/20 */6 1,15 * *", 0),
    ("45 0 3 * * *", "0 3 * * *", 45),
    ("@daily", "0 0 * * *", 0),
    ("@yearly", "0 0 1 1 *", 0),
    # robfig (any item) and crontab (first item) both let a starred day field mean 'not restricted'.
    ("0 0 0 ? * 1,*/2", "0 0 * * */2,1", 0),
])
def test_crontab_form(expression, fields, delay):
    assert to_crontab(parse_cron(expression)) == (fields, delay)


def test_crontab_line_delays_for_a_second_and_escapes_percent():
    assert crontab_line(parse_cron("0 0 3 * * *"), "tlpipe run") == "0 3 * * * tlpipe run"
    line = crontab_line(parse_cron("30 0 3 * * *"), "date +%F")
    assert line == "0 3 * * * sleep 30 && date +\\%F"


@pytest.mark.parametrize("expression, needle", [
    ("*/10 0 3 * * *", "asks for 6 runs a minute"),
    ("@every 6h", "cannot express '@every'"),
])
def test_crontab_cannot_express_several_seconds_or_intervals(expression, needle):
    with pytest.raises(CronError) as caught:
        to_crontab(parse_cron(expression))
    assert needle in str(caught.value)

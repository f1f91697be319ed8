"""Kubeflow Pipelines' cron expressions: validation, and translation to a local crontab.

Kubeflow's API server accepts a recurring run's schedule only if
`github.com/robfig/cron` v1.2's `cron.Parse` does, and its scheduler evaluates it
in UTC. That grammar has six fields,

    seconds  minutes  hours  day-of-month  month  day-of-week
    0-59     0-59     0-23   1-31          1-12   0-6 (0 = Sunday)

each a comma-separated list of items: `*` or `?` (every value), `N`, `A-B`,
`*/S`, `A-B/S`, `N/S` (from N to the field's maximum, every S); months and
days of the week may be written as names (`jan`..`dec`, `sun`..`sat`, any case).
Descriptors replace the six fields: `@yearly`, `@annually`, `@monthly`,
`@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <Go duration>` (`1h30m`).

`parse_cron` checks an expression against that grammar, naming the field, the
value received and what the field allows. It is deliberately stricter than
robfig/cron in four places, each a schedule that Kubeflow would accept but that
cannot be what the user meant:
  * five fields: robfig reads them as seconds..month, so the crontab line
    `0 3 * * *` would run at minute 3 of *every* hour instead of at 03:00;
  * empty list items (`1,,2`), which robfig drops silently (`,` alone never fires);
  * `*-N` or `?-N`, which robfig silently reads as `*`;
  * `@every` below one second, which robfig rounds up to a run every second.

`to_crontab` turns a schedule into the five fields of a classic crontab, when
that is possible: a crontab has no seconds field, so only a single second can
be expressed (a start delay inside the minute), and `@every` intervals, which
count from the schedule's start rather than the wall clock, cannot be.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

from tlpipe.models.plumbing.errors import TlpipeError

MONTH_NAMES = {name: number for number, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
DAY_NAMES = {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

SYNTAX = "'*' or '?', N, A-B, */S, A-B/S or N/S, and comma-separated lists of those"
EXAMPLE = "'0 0 3 * * *' (every day at 03:00:00 UTC)"


@dataclasses.dataclass(frozen=True)
class Field:
    """One of the six positions of a cron expression."""

    position: int
    name: str
    low: int
    high: int
    names: Optional[dict[str, int]] = None

    def allowed(self) -> str:
        values = f"{self.low}-{self.high}"
        if self.names:
            first, *_, last = self.names
            values += f" or names {first}-{last}"
        if self.name == "day-of-week":
            values += " (0 = Sunday)"
        return f"{values}; {SYNTAX}"


FIELDS = (
    Field(1, "seconds", 0, 59),
    Field(2, "minutes", 0, 59),
    Field(3, "hours", 0, 23),
    Field(4, "day-of-month", 1, 31),
    Field(5, "month", 1, 12, MONTH_NAMES),
    Field(6, "day-of-week", 0, 6, DAY_NAMES),
)

# The six fields each descriptor stands for (robfig/cron's own definitions).
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
EVERY = "@every"

_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class CronError(TlpipeError, ValueError):
    """A schedule that Kubeflow would refuse, or that a local crontab cannot express."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One list item of a field: values start..end every step; `star` when written as '*' or '?'."""

    start: int
    end: int
    step: int
    star: bool

    def values(self) -> range:
        return range(self.start, self.end + 1, self.step)


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    """A validated schedule: the normalised expression sent to Kubeflow, and what it means."""

    expression: str
    fields: tuple[tuple[Item, ...], ...] = ()
    every_seconds: Optional[float] = None

    def values(self, field_name: str) -> frozenset[int]:
        """Every value a field matches (empty for `@every` schedules)."""
        if not self.fields:
            return frozenset()
        items = self.fields[[field.name for field in FIELDS].index(field_name)]
        return frozenset(value for item in items for value in item.values())


def parse_cron(expression: str) -> CronSchedule:
    """Validate a Kubeflow (robfig/cron v1.2) schedule; raise CronError naming the faulty field."""
    text = expression.strip()
    if not text:
        raise CronError(f"cron expression {expression!r} is empty; allowed: six fields, e.g. {EXAMPLE}")
    if text.startswith("@"):
        return _parse_descriptor(text, expression)
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise CronError(_field_count_message(expression, parts))
    fields = tuple(_parse_field(part, field, expression) for part, field in zip(parts, FIELDS))
    return CronSchedule(expression=" ".join(parts), fields=fields)


def _field_count_message(expression: str, parts: list[str]) -> str:
    names = " ".join(field.name for field in FIELDS)
    message = (f"cron expression {expression!r} has {len(parts)} field(s); "
               f"allowed: exactly 6 ({names}) or a descriptor ({', '.join([*DESCRIPTORS, EVERY + ' <duration>'])})")
    if len(parts) == 5:
        message += (f". Kubeflow would read these 5 fields as seconds..month, not as a crontab line: "
                    f"put the seconds first, e.g. '0 {' '.join(parts)}'")
    return message


def _parse_descriptor(text: str, expression: str) -> CronSchedule:
    keyword, _, argument = text.partition(" ")
    if keyword in DESCRIPTORS and not argument.strip():
        return dataclasses.replace(parse_cron(DESCRIPTORS[keyword]), expression=keyword)
    if keyword == EVERY:
        duration = argument.strip()
        seconds = _go_duration_seconds(duration)
        if seconds is None:
            raise CronError(f"cron expression {expression!r}: '@every' received duration {duration!r}; "
                            "allowed: a Go duration such as '90s', '15m' or '1h30m' (units h, m, s, ms, us, ns)")
        if seconds < 1:
            raise CronError(f"cron expression {expression!r}: '@every' received {duration!r}, below one second; "
                            "allowed: an interval of at least 1s (Kubeflow would start a run every second)")
        return CronSchedule(expression=f"{EVERY} {duration}", every_seconds=seconds)
    raise CronError(f"cron expression {expression!r}: unknown descriptor {text!r}; allowed: "
                    + ", ".join([*DESCRIPTORS, EVERY + " <duration>"]) + " (lower case), or six fields")


def _go_duration_seconds(text: str) -> Optional[float]:
    """Seconds in a Go `time.ParseDuration` string, or None when it is not one."""
    sign, body = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.lstrip("+") if text[:1] == "+" else text)
    if body == "0":
        return 0.0
    total, position = 0.0, 0
    for match in _GO_DURATION_PART.finditer(body):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        return None
    return sign * total


def _parse_field(text: str, field: Field, expression: str) -> tuple[Item, ...]:
    def fail(received: str, reason: str = "") -> CronError:
        detail = f" ({reason})" if reason else ""
        return CronError(f"cron expression {expression!r}: field {field.position} ({field.name}) received "
                         f"{received!r}{detail}; allowed: {field.allowed()}")

    items = text.split(",")
    if any(not item for item in items):
        raise fail(text, "empty list item")
    return tuple(_parse_item(item, field, fail) for item in items)


def _parse_item(text: str, field: Field, fail: Callable[..., CronError]) -> Item:
    range_text, *steps = text.split("/")
    if len(steps) > 1:
        raise fail(text, "more than one '/'")
    bounds = range_text.split("-")
    if bounds[0] in ("*", "?"):
        if len(bounds) > 1:
            raise fail(text, f"'{bounds[0]}' cannot start a range")
        start, end, star = field.low, field.high, True
    elif len(bounds) > 2:
        raise fail(text, "more than one '-'")
    else:
        start = _number(bounds[0], field, fail, text)
        end = _number(bounds[1], field, fail, text) if len(bounds) == 2 else start
        star = False
    step = 1
    if steps:
        step = _number(steps[0], None, fail, text)
        if step == 0:
            raise fail(text, "a step must be at least 1")
        if len(bounds) == 1 and not star:
            end = field.high  # robfig: 'N/S' means 'N-max/S'
    if start < field.low or end > field.high:
        raise fail(text, f"outside {field.low}-{field.high}")
    if start > end:
        raise fail(text, f"range starts after it ends ({start} > {end})")
    return Item(start, end, step, star)


def _number(text: str, field: Optional[Field], fail: Callable[..., CronError], item: str) -> int:
    if field is not None and field.names and text.lower() in field.names:
        return field.names[text.lower()]
    digits = text[1:] if text.startswith("+") else text  # Go's strconv.Atoi accepts a '+' sign
    if not digits.isdigit() or not digits.isascii():
        what = "a number or a name" if field is not None and field.names else "a number"
        raise fail(item, f"{text!r} is not {what}")
    return int(digits)


def to_crontab(schedule: CronSchedule) -> tuple[str, int]:
    """Five crontab fields (minute hour day-of-month month day-of-week) and a start delay in seconds.

    Raises CronError when a local crontab cannot express the schedule: several
    seconds in a minute (a crontab fires at most once a minute) or an `@every`
    interval.
    """
    if schedule.every_seconds is not None:
        raise CronError(
            f"cron expression {schedule.expression!r}: a local crontab cannot express '@every' (Kubeflow counts "
            "the interval from the schedule's start, a crontab follows the clock); write six fields instead, "
            f"e.g. {EXAMPLE}")
    seconds = sorted(schedule.values("seconds"))
    if len(seconds) > 1:
        raise CronError(
            f"cron expression {schedule.expression!r}: field 1 (seconds) asks for {len(seconds)} runs a minute, "
            "and a local crontab starts a job at most once a minute; allowed for a local crontab: a single second "
            "such as '0'")
    crontab_fields = " ".join(_crontab_field(items, field) for items, field in zip(schedule.fields[1:], FIELDS[1:]))
    return crontab_fields, seconds[0]


def crontab_line(schedule: CronSchedule, command: str) -> str:
    """A crontab line running the shell `command` on `schedule` (in the machine's time zone).

    A single second other than 0 becomes a `sleep` before the command; '%',
    which crontab turns into a newline, is escaped.
    """
    fields, delay = to_crontab(schedule)
    command = command.replace("%", "\\%")
    return f"{fields} sleep {delay} && {command}" if delay else f"{fields} {command}"


def _crontab_field(items: tuple[Item, ...], field: Field) -> str:
    """Numbers only (no names, no '?'); starred items first, since crontab looks at the first one
    to decide whether day-of-month / day-of-week restrict the days (as robfig does for any item)."""
    def text(item: Item) -> str:
        if item.star:
            base = "*"
        elif item.start == item.end and item.step == 1:
            return str(item.start)
        else:
            base = f"{item.start}-{item.end}"
        return base if item.step == 1 else f"{base}/{item.step}"

    ordered = sorted(items, key=lambda item: not item.star)
    return ",".join(text(item) for item in ordered)

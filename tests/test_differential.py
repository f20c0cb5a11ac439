"""Differential tests: the compiled and the pure twin of every core primitive agree.

Each test builds the compiled and the pure object from the same constructor
arguments, each with its own clock, drives both with the same operations
(time moving by the same amounts on both clocks) and after every step compares
everything either object lets one observe: return values, raised exception
types and messages, state, generation, counters, windows, token counts and the
listener's log. Both clocks start at the same time, drawn from ordinary times
and from extreme ones on both sides of zero (-1e12 to 1e12): some divergences
show only far from zero. Floats must be equal bit for bit (docs/architecture.md, "Twins":
"the twins compute the same floats"), so they are compared by ``repr``: NaN equals NaN, ``0.0``
does not equal ``-0.0``.

Operations are drawn up front as plain tuples, with times and amounts given in
units of the object's own scale (``reset_timeout``, the bucket's fill time, a
window slice), so a failing example prints as a readable script. Most choices
are single draws from weighted tables: cheap to generate, and they shrink
towards the first (simplest) entry.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from random import Random
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, find, given, settings
from hypothesis import strategies as st

from resilience.testing import FakeClock

Twins = tuple[SimpleNamespace, SimpleNamespace]
Op = tuple[Any, ...]
Logs = tuple[list[Any], list[Any]]

STATE_NAMES = ("CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "DISABLED")
CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED = range(5)

# How much earlier than the clock's start, or than -100 s, ``Pair.far_past`` is:
# before any time the strategies give an object (offsets of a few of its scales
# from its clock, absolute times >= -100), and small enough that
# ``far_past / slice_width`` stays an integer a double holds exactly.
PEEK_DISTANCE = 1e9


# -- comparing ------------------------------------------------------------------------


class Raised:
    """What a call that raised is compared by: the exception's type and message."""

    __slots__ = ("kind", "message")

    def __init__(self, exc: BaseException) -> None:
        self.kind = type(exc)
        self.message = str(exc)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Raised) and self.kind is other.kind and self.message == other.message
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.message))

    def __repr__(self) -> str:
        return f"raised {self.kind.__name__}({self.message!r})"


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or a ``Raised`` for the exception it raised."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # compared, never swallowed
        return Raised(exc)


def same(a: Any, b: Any) -> bool:
    """Exactly equal: same types, floats bit for bit (NaN == NaN, 0.0 != -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def expect_same(label: str, compiled: Any, pure: Any) -> None:
    assert same(compiled, pure), f"{label}: compiled {compiled!r} != pure {pure!r}"


class ScriptedClock(FakeClock):
    """A FakeClock whose reading can be replaced by a bad value for one operation."""

    __slots__ = ("reading",)

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self.reading: Any = None

    def __call__(self) -> Any:
        return self._now if self.reading is None else self.reading

    @property
    def now(self) -> float:
        return self._now


class Pair:
    """A compiled and a pure object driven in lock step, each with its own clock."""

    def __init__(self, compiled: Any, pure: Any, clocks: tuple[ScriptedClock, ScriptedClock]):
        self.c = compiled
        self.p = pure
        self.clocks = clocks
        # Before any time the strategies give: a read there is a step back.
        self.far_past = min(clocks[0].now, -100.0) - PEEK_DISTANCE

    @property
    def past(self) -> float:
        """The time a peek reads at: the latest reading the objects have had
        (read off the pure twin), so that a peek neither moves their time on
        nor steps it back. Before any reading, ``far_past``."""
        latest = getattr(self.p, "_last", None)
        if latest is None:
            timeline = getattr(self.p, "_timeline", None)
            latest = None if timeline is None else timeline.last
        if latest is None or not math.isfinite(latest):
            return self.far_past
        return float(latest)

    @property
    def now(self) -> float:
        return self.clocks[0].now

    def call(self, label: str, name: str, *args: Any, **kwargs: Any) -> Any:
        rc = outcome(getattr(self.c, name), *args, **kwargs)
        rp = outcome(getattr(self.p, name), *args, **kwargs)
        expect_same(f"{label}: {name}", rc, rp)
        return rc

    def get(self, label: str, name: str) -> Any:
        rc = outcome(getattr, self.c, name)
        rp = outcome(getattr, self.p, name)
        expect_same(f"{label}: .{name}", rc, rp)
        return rc

    def check_repr(self, label: str) -> str:
        rc, rp = repr(self.c), repr(self.p)
        expect_same(f"{label}: repr", rc, rp)
        return rc

    def check_clocks(self, label: str) -> None:
        expect_same(f"{label}: clocks", self.clocks[0].now, self.clocks[1].now)

    def advance(self, label: str, seconds: float) -> None:
        if 0.0 <= seconds < math.inf:
            for clock in self.clocks:
                clock.advance(seconds)
            self.check_clocks(label)

    def with_bad_clock(self, reading: Any, action: Callable[[], None]) -> None:
        for clock in self.clocks:
            clock.reading = reading
        try:
            action()
        finally:
            for clock in self.clocks:
                clock.reading = None


def build(
    label: str, make: Callable[[SimpleNamespace, ScriptedClock], Any], twins: Twins, start: float
) -> Pair | None:
    """Both objects from ``make``; None (once both raised alike) when they could not be."""
    clocks = (ScriptedClock(start), ScriptedClock(start))
    compiled = outcome(make, twins[0], clocks[0])
    pure = outcome(make, twins[1], clocks[1])
    if isinstance(compiled, Raised) or isinstance(pure, Raised):
        if not isinstance(compiled, Raised):
            compiled = f"built {compiled!r}"
        if not isinstance(pure, Raised):
            pure = f"built {pure!r}"
        expect_same(f"{label}: construction", compiled, pure)
        return None
    return Pair(compiled, pure, clocks)


# -- drawing ---------------------------------------------------------------------------


class Table:
    """A weighted table of specs drawn with one draw.

    A spec is a tuple; an element that is itself a strategy is drawn when the
    spec is picked, so rare open-ended values cost nothing when not picked.
    """

    def __init__(self, *rows: tuple[Sequence[Any], int]) -> None:
        self.specs = [spec for specs, weight in rows for spec in specs for _ in range(weight)]
        self.strategy = st.sampled_from(self.specs)

    def draw(self, draw: st.DrawFn) -> Any:
        spec = draw(self.strategy)
        if isinstance(spec, tuple) and any(isinstance(x, st.SearchStrategy) for x in spec):
            return tuple(draw(x) if isinstance(x, st.SearchStrategy) else x for x in spec)
        return spec


def rows(tag: str, values: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [(tag, value) for value in values]


# The time both clocks start at: ordinary ones, and extremes on both sides of
# zero, where a divergence may be all there is to see (what rounding can lose
# grows with the magnitude of the time: the bucket's slack follows ``abs(now)``).
EXTREME_STARTS = [-1e12, -1e9, -1e6, 1e6, 1e9, 1e12]
CLOCK_STARTS = st.one_of(
    st.sampled_from([0.0, 0.1, 1000.5, -50.0, 12345.678]),
    st.sampled_from(EXTREME_STARTS),
    st.floats(-1e12, 1e12),
)
BAD_NOWS = [math.nan, math.inf, -math.inf, "soon", True, 10**400, [1.0]]
BAD_READINGS = [math.nan, math.inf, -math.inf, "noon", True, 10**400, 7]

# ``now=``: omitted (the clock is read), None, relative to the clock in units of
# the object's scale (often earlier than times already seen), absolute, or bad.
WHEN_ROWS: list[tuple[Sequence[Any], int]] = [
    ([("omit",)], 24),
    ([("none",)], 2),
    (rows("at", [-2.0, -1.0, -0.5, -0.01, 0.0, 0.01, 0.5, 0.999, 1.0, 1.001, 2.0]), 2),
    ([("at", st.floats(-3.0, 3.0))], 4),
    (rows("abs", [0.0, -1.0, 5, 100.25]), 1),
    ([("abs", st.floats(-100.0, 1e4))], 1),
    ([("bad", st.sampled_from(BAD_NOWS))], 2),
]
WHEN = Table(*WHEN_ROWS)


def when_kwargs(spec: Op, pair: Pair, unit: float) -> dict[str, Any]:
    kind = spec[0]
    if kind == "omit":
        return {}
    if kind == "none":
        return {"now": None}
    if kind == "past":
        return {"now": pair.far_past}
    if kind == "at":
        return {"now": pair.now + spec[1] * unit}
    return {"now": spec[1]}  # "abs", "bad"


def time_of(kwargs: dict[str, Any], pair: Pair) -> float:
    """The time an operation given ``kwargs`` runs at (before any clamping)."""
    now = kwargs.get("now")
    if type(now) is int and abs(now) < 2**53:
        return float(now)
    if type(now) is float and math.isfinite(now):
        return now
    return pair.now  # the clock's, or a bad value that raised


def seconds_of(spec: Op, units: dict[str, float]) -> Any:
    """``("raw", value)`` as it is (bad values included), or a multiple of a unit."""
    if spec[0] == "raw":
        return spec[1]
    return spec[1] * units[spec[0]]


def advance_amount(spec: Op, units: dict[str, float]) -> float:
    """``("raw", seconds)`` or ``(unit_name, multiple)``."""
    if spec[0] == "raw":
        return float(spec[1])
    return float(spec[1] * units[spec[0]])


def op_lists(op: Callable[[st.DrawFn], Op], max_size: int) -> st.SearchStrategy[list[Op]]:
    # Hypothesis aims lists at about twice min_size: runs long enough to trip,
    # wait out the open time, probe and close again.
    return st.lists(st.composite(op)(), min_size=max_size // 4, max_size=max_size)


# -- BreakerCore -------------------------------------------------------------------------

BREAKER_PROPS = (
    "generation",
    "open_duration",
    "consecutive_failures",
    "half_open_probes",
    "rejected",
    "total_calls",
    "total_failures",
    "total_slow_calls",
    "total_ignored",
)

BREAKER_NAMES = Table(
    (
        [
            "acquire",
            "record_failure",
            "record_success",
            "advance",
            "allow",
            "release",
            "record_ignored",
            "current_state",
            "retry_after",
            "window_totals",
            "advance_retry_after",
            "state",
            "reset",
            "force_open",
            "disable",
            "bad_clock",
            "trip",
            "open_for",
            "half_open",
        ],
        1,
    ),
    (["acquire"], 12),
    (["record_success", "advance"], 10),
    (["record_failure"], 7),
    (["advance_retry_after", "trip"], 3),
    (["allow", "release", "record_ignored"], 2),
)
# ``("due",)``: exactly when the open time (OPEN) or the oldest probe (HALF_OPEN)
# runs out, as far as the test can tell from the times it passed.
BREAKER_WHEN = Table(*WHEN_ROWS, ([("due",)], 5))
# Tokens handed back with an outcome or a release.
GENERATIONS = Table(
    ([("omit",)], 4),
    ([("raw", -1)], 2),  # no token: in HALF_OPEN it settles the oldest probe
    ([("last",)], 6),  # the latest token acquire returned (-1 when refused)
    ([("current",)], 2),  # the generation (in HALF_OPEN no probe's token)
    (rows("stale", [1, 2, 3]), 1),
    ([("token", st.integers(0, 30))], 2),  # any token seen so far
    (rows("future", [1, 2]), 1),
    ([("raw", 0)], 1),
    ([("raw", st.sampled_from([-2, 1.0, None, "1", 2**63, True]))], 1),  # bad
)
# Call durations in units of slow_call_duration (reset_timeout when unset).
DURATIONS = Table(
    ([("omit",)], 6),
    (rows("slow", [0.0, 0.5, 0.999, 1.0, 1.001, 3.0]), 2),
    ([("raw", st.floats(0.0, 100.0))], 1),
    ([("raw", st.sampled_from([0, 2]))], 1),
    ([("raw", st.sampled_from([-1.0, -1, math.nan, math.inf, "1s", True, None]))], 1),  # bad
)
BREAKER_ADVANCES = Table(
    (rows("rt", [0.25, 0.5, 0.999, 1.0, 1.001, 2.0, 4.0, 8.0]), 4),
    ([("rt", st.floats(0.0, 5.0))], 6),
    (rows("win", [0.5, 1.0, 1.5, 3.0, 9.0, 10.0, 11.0]), 2),
    ([("raw", st.floats(0.0, 50.0))], 2),
)


def breaker_op(draw: st.DrawFn, nested: bool = False) -> Op:
    name = BREAKER_NAMES.draw(draw)
    if name in ("acquire", "allow", "current_state", "retry_after", "window_totals"):
        return (name, BREAKER_WHEN.draw(draw))
    if name in ("record_success", "record_failure"):
        return (name, DURATIONS.draw(draw), BREAKER_WHEN.draw(draw), GENERATIONS.draw(draw))
    if name == "trip":
        return (name, draw(st.integers(1, 12)))
    if name == "open_for":  # seconds in the breaker's scale, or bad ones
        return (name, draw(st.sampled_from([("rt", 0.5), ("rt", 2.0), ("raw", 0.0), ("raw", -1.0),
                                            ("raw", math.nan), ("raw", math.inf), ("raw", "1")])),
                BREAKER_WHEN.draw(draw))  # fmt: skip
    if name == "half_open":
        return (name, BREAKER_WHEN.draw(draw))
    if name in ("release", "record_ignored"):
        return (name, GENERATIONS.draw(draw))
    if name == "advance":
        return (name, BREAKER_ADVANCES.draw(draw))
    if name == "bad_clock":
        if nested:
            return ("state",)
        return (name, draw(st.sampled_from(BAD_READINGS)), breaker_op(draw, nested=True))
    return (name,)


BREAKER_OPS = op_lists(breaker_op, max_size=80)


@st.composite
def breaker_configs(draw: st.DrawFn, timed: bool) -> tuple[dict[str, Any], float]:
    rt = draw(st.sampled_from([0.1, 1.0, 2.5, 30.0]) | st.floats(0.001, 100.0))
    kwargs: dict[str, Any] = {
        "failure_threshold": draw(st.integers(0, 4)),
        "failure_rate": draw(
            st.none() | st.sampled_from([0.2, 0.5, 1.0, 1]) | st.floats(0.01, 1.0)
        ),
        "slow_call_duration": draw(
            st.none() | st.sampled_from([0.5, 1.0, 3.0, 2]) | st.floats(0.001, 10.0)
        ),
        "slow_call_rate": draw(
            st.none() | st.sampled_from([0.25, 0.5, 1.0]) | st.floats(0.01, 1.0)
        ),
        "minimum_calls": draw(st.integers(1, 8)),
        "reset_timeout": rt,
        "reset_timeout_max": draw(
            st.none() | st.sampled_from([1.0, 2.0, 3.5, 16.0]).map(lambda k: rt * k)
        ),
        "half_open_calls": draw(st.integers(1, 3)),
    }
    if kwargs["slow_call_duration"] is None:
        kwargs["slow_call_rate"] = None  # a slow-call rate without a duration is refused
    if timed:
        kwargs["window_duration"] = draw(
            st.sampled_from([0.5, 1.0, 5.0, 10.0, 60.0]) | st.floats(0.01, 100.0)
        )
        if draw(st.booleans()):
            kwargs["window"] = draw(st.integers(1, 5))  # validated, then unused
    else:
        kwargs["window"] = draw(st.integers(1, 8))
    return kwargs, draw(CLOCK_STARTS)


def breaker_state(breaker: Any) -> int:
    """The raw state (no due OPEN -> HALF_OPEN move), from the repr."""
    match = re.search(r"state=(\w+)", repr(breaker))
    assert match is not None
    return STATE_NAMES.index(match.group(1))


def compare_breakers(pair: Pair, logs: Logs, label: str) -> None:
    for name in BREAKER_PROPS:
        pair.get(label, name)
    pair.check_repr(label)
    pair.call(label, "retry_after", now=pair.past)
    pair.call(label, "window_totals", now=pair.past)
    expect_same(f"{label}: listener log", logs[0], logs[1])
    pair.check_clocks(label)


def make_breaker(kwargs: dict[str, Any], twins: Twins, logs: Logs) -> Callable[..., Any]:
    def make(ns: SimpleNamespace, clock: ScriptedClock) -> Any:
        log = logs[0] if ns is twins[0] else logs[1]
        return ns.BreakerCore(
            **kwargs, clock=clock, listener=lambda old, new: log.append((old, new))
        )

    return make


def run_breaker(
    twins: Twins, config: tuple[dict[str, Any], float], ops: list[Op], every_step: bool = True
) -> set[str]:
    """Drive both twins through ``ops``, comparing after every step (or only at the end).

    Returns the milestones the run reached, for the coverage checks.
    """
    kwargs, start = config
    logs: Logs = ([], [])
    pair = build("BreakerCore", make_breaker(kwargs, twins, logs), twins, start)
    assert pair is not None
    rt = kwargs["reset_timeout"]
    half_open_calls = kwargs["half_open_calls"]
    duration = kwargs.get("window_duration")
    units = {
        "rt": rt,
        "win": duration / min(100, max(10, math.ceil(duration))) if duration else rt,
        "slow": kwargs.get("slow_call_duration") or rt,
    }
    tokens: list[int] = []
    reached: set[str] = set()
    # The probes still out (by token) and when each was issued.
    probes: dict[int, float] = {}

    def when(spec: Op) -> dict[str, Any]:
        if spec[0] != "due":
            return when_kwargs(spec, pair, rt)
        # The times the breaker keeps, read off the pure twin: a step back
        # of the clock shifts them, which a model would have to redo.
        slots = zip(pair.p._probe_tokens, pair.p._probe_times, strict=True)
        held = [at for token, at in slots if token >= 0]
        since = min(held) if held else pair.p._opened_at
        return {"now": since + pair.c.open_duration}

    def generation(spec: Op) -> dict[str, Any]:
        kind = spec[0]
        current = pair.c.generation
        if kind == "omit":
            return {}
        if kind == "last":
            value = tokens[-1] if tokens else -1
        elif kind == "current":
            value = current
        elif kind == "stale":
            value = max(0, current - spec[1])
        elif kind == "token":
            value = tokens[spec[1] % len(tokens)] if tokens else -1
        elif kind == "future":
            value = current + spec[1]
        else:
            value = spec[1]
        if type(value) is int and value >= 0 and tokens and value != tokens[-1]:
            reached.add("older or unknown token")
        return {"generation": value}

    def settle(kw: dict[str, Any]) -> None:
        token = kw.get("generation", -1)
        if token == -1 and probes:
            token = min(probes)
        probes.pop(token, None)

    def apply(op: Op, label: str) -> tuple[Any, float]:
        """Run one step on both; returns its result and the time it was given."""
        name = op[0]
        if name in ("acquire", "allow", "current_state", "retry_after", "window_totals"):
            kw = when(op[1])
            t = time_of(kw, pair)
            full = pair.p.half_open_probes >= half_open_calls
            result = pair.call(label, name, **kw)
            if name == "acquire" and type(result) is int:
                tokens.append(result)
                if result >= 0 and breaker_state(pair.p) == HALF_OPEN:
                    if full:
                        od = pair.c.open_duration
                        for token, issued in list(probes.items()):
                            if t >= issued + od:
                                del probes[token]
                    probes[result] = t
            return result, t
        if name == "trip":  # failures until the breaker trips, at most op[1]
            for k in range(op[1]):
                if breaker_state(pair.p) != CLOSED:
                    break
                pair.call(f"{label} #{k}", "record_failure")
            return None, pair.now
        if name in ("record_success", "record_failure"):
            dur_spec, when_spec, gen = op[1], op[2], op[3]
            kw = when(when_spec)
            if dur_spec[0] == "slow":
                kw["duration"] = dur_spec[1] * units["slow"]
            elif dur_spec[0] == "raw":
                kw["duration"] = dur_spec[1]
            kw.update(generation(gen))
            settle(kw)
            return pair.call(label, name, **kw), time_of(kw, pair)
        if name in ("release", "record_ignored"):
            kw = generation(op[1])
            settle(kw)
            return pair.call(label, name, **kw), pair.now
        if name in ("force_open", "disable", "reset"):
            return pair.call(label, name), pair.now
        if name in ("open_for", "half_open"):
            kw = when(op[-1])
            args = () if name == "half_open" else (seconds_of(op[1], units),)
            return pair.call(label, name, *args, **kw), time_of(kw, pair)
        if name == "state":
            return pair.get(label, "state"), pair.now
        if name == "advance":
            return pair.advance(label, advance_amount(op[1], units)), pair.now
        if name == "advance_retry_after":
            wait = pair.call(label, "retry_after")
            if type(wait) is float:
                pair.advance(label, wait)
            return wait, pair.now
        assert name == "bad_clock", name
        results: list[tuple[Any, float]] = []
        pair.with_bad_clock(op[1], lambda: results.append(apply(op[2], label + " (bad clock)")))
        return results[0]

    last_totals = pair.call("start", "window_totals", now=pair.past)
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        before_state = breaker_state(pair.p)
        before_probes = pair.p.half_open_probes
        before_log = len(logs[1])
        result, _ = apply(op, label)
        if every_step:
            compare_breakers(pair, logs, label)
        after_state = breaker_state(pair.p)
        for old, new in logs[1][before_log:]:
            reached.add(f"{STATE_NAMES[old]}->{STATE_NAMES[new]}")
        if after_state != HALF_OPEN:
            probes.clear()
        if (
            op[0] == "acquire"
            and before_state == after_state == HALF_OPEN
            and before_probes >= half_open_calls
            and type(result) is int
            and result >= 0
        ):
            reached.add("lost probe taken back")
        if pair.p.open_duration > rt:
            reached.add("open time grew")
        # Read off the pure twin's running totals, as its last operation left
        # them: a read through window_totals would be an operation of its own,
        # on one twin only (a reading there can move the window's time).
        window = pair.p._window
        totals = (window._calls, window._failures, window._slow)
        if (
            duration is not None
            and totals[0] < last_totals[0]
            and before_state == after_state == CLOSED
            and len(logs[1]) == before_log
        ):
            reached.add("time window evicted")
        last_totals = totals
    compare_breakers(pair, logs, "end")
    return reached


def report(reached: Iterable[str]) -> None:
    for milestone in sorted(reached):
        event(milestone)


@given(config=breaker_configs(timed=False), ops=BREAKER_OPS)
def test_breaker_count_window(
    twins: Twins, config: tuple[dict[str, Any], float], ops: list[Op]
) -> None:
    report(run_breaker(twins, config, ops))


@given(config=breaker_configs(timed=True), ops=BREAKER_OPS)
def test_breaker_time_window(
    twins: Twins, config: tuple[dict[str, Any], float], ops: list[Op]
) -> None:
    report(run_breaker(twins, config, ops))


# Proof that the strategies above reach the interesting states: hypothesis
# searches them (seeded, no shrinking) for a run that does, and it is then
# replayed with a comparison after every step.
COVERAGE_SETTINGS = settings(
    max_examples=1000,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(
    ("timed", "milestones"),
    [
        (False, {"CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"}),
        (False, {"HALF_OPEN->OPEN", "open time grew"}),
        (False, {"lost probe taken back", "older or unknown token"}),
        (True, {"CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"}),
        (True, {"time window evicted"}),
    ],
)
def test_strategies_reach_the_interesting_states(
    twins: Twins, timed: bool, milestones: set[str]
) -> None:
    cases = st.tuples(breaker_configs(timed=timed), BREAKER_OPS)
    found = find(
        cases,
        lambda case: milestones <= run_breaker(twins, case[0], case[1], every_step=False),
        settings=COVERAGE_SETTINGS,
        random=Random(0),
    )
    assert milestones <= run_breaker(twins, found[0], found[1])


@pytest.mark.parametrize("start", [0.0, *EXTREME_STARTS])
def test_breaker_scripted_round_trip(twins: Twins, start: float) -> None:
    """A fixed script through every transition, compared on both twins at every step,
    with the clock starting at zero and far from it."""
    config = (
        {
            "failure_threshold": 2,
            "window": 4,
            "minimum_calls": 4,
            "failure_rate": 0.5,
            "reset_timeout": 1.0,
            "reset_timeout_max": 3.0,
            "half_open_calls": 2,
        },
        start,
    )
    now = ("omit",)
    last = ("last",)
    plain = ("omit",)
    script: list[Op] = [
        ("acquire", now),
        ("record_failure", plain, now, last),
        ("acquire", now),
        ("record_failure", plain, now, last),  # trip at 0: OPEN for 1 s
        ("acquire", now),  # rejected
        ("advance", ("rt", 1.0)),
        ("acquire", now),  # HALF_OPEN, probe issued at 1
        ("record_failure", plain, now, last),  # OPEN again, now for 2 s
        ("advance", ("rt", 1.0)),
        ("acquire", now),  # still OPEN
        ("advance", ("rt", 1.0)),
        ("acquire", now),  # HALF_OPEN, probe issued at 3
        ("advance", ("rt", 0.5)),
        ("acquire", now),  # probe issued at 3.5
        ("acquire", now),  # rejected: both probes out
        ("retry_after", now),  # 1.5 s until the first probe is taken back
        ("advance", ("rt", 2.0)),
        ("acquire", now),  # both lost probes taken back
        ("record_success", plain, now, ("token", 5)),  # a lost probe's late outcome: ignored
        ("record_success", plain, now, last),
        ("acquire", now),
        ("record_success", plain, now, last),  # CLOSED
        ("force_open",),
        ("retry_after", now),
        ("disable",),
        ("reset",),
    ]
    reached = run_breaker(twins, config, script)
    assert {
        "CLOSED->OPEN",
        "OPEN->HALF_OPEN",
        "HALF_OPEN->OPEN",
        "HALF_OPEN->CLOSED",
        "open time grew",
        "lost probe taken back",
        "older or unknown token",
    } <= reached


# -- TokenBucket --------------------------------------------------------------------------

BUCKET_NAMES = Table(
    (["try_acquire", "advance"], 6),
    (["reserve"], 4),
    (["wait_time"], 3),
    (["refund", "set_rate", "tokens_at", "advance_wait_time"], 2),
    (["available", "bad_clock"], 1),
)
TOKENS = Table(
    ([("omit",)], 4),
    (rows("cap", [0.0, 0.1, 0.5, 1.0, 1.0000001, 1.5, 3.0]), 2),
    (rows("abs", [0, 1, 2, 0.5, 1e-10, 1.0]), 1),
    ([("abs", st.floats(0.0, 10.0))], 2),
    (
        [("abs", st.sampled_from([-1, -0.5, -1e-300, math.nan, math.inf, "1", True, None]))],
        1,
    ),
)
MAX_WAITS = Table(
    ([("omit",)], 4),
    (rows("abs", [0.0, 0, math.inf, 1e-9, 10**400]), 1),
    (rows("fill", [0.1, 0.5, 1.0, 2.0]), 1),
    ([("fill", st.floats(0.0, 3.0))], 2),
    ([("abs", st.sampled_from([-1.0, -math.inf, math.nan, "x", True, None]))], 1),
)
RATES = Table(
    (rows("abs", [0.5, 1, 2.0, 10.0, 1e-3, 3]), 2),
    ([("abs", st.floats(1e-3, 1e3))], 8),
    ([("abs", st.sampled_from([0, 0.0, -1.0, math.nan, math.inf, "2", True, None, 10**400]))], 2),
)
BUCKET_ADVANCES = Table(
    (rows("fill", [0.01, 0.1, 0.25, 0.5, 1.0, 2.0]), 2),
    ([("fill", st.floats(0.0, 3.0))], 6),
    ([("raw", st.floats(0.0, 100.0))], 1),
)


def bucket_op(draw: st.DrawFn, nested: bool = False) -> Op:
    name = BUCKET_NAMES.draw(draw)
    if name in ("try_acquire", "wait_time", "refund"):
        return (name, TOKENS.draw(draw), WHEN.draw(draw))
    if name == "reserve":
        return (name, TOKENS.draw(draw), MAX_WAITS.draw(draw), WHEN.draw(draw))
    if name == "set_rate":
        return (name, RATES.draw(draw)[1], WHEN.draw(draw))
    if name == "tokens_at":
        return (name, WHEN.draw(draw))
    if name == "advance":
        return (name, BUCKET_ADVANCES.draw(draw))
    if name == "advance_wait_time":
        return (name, TOKENS.draw(draw))
    if name == "bad_clock":
        if nested:
            return ("available",)
        return (name, draw(st.sampled_from(BAD_READINGS)), bucket_op(draw, nested=True))
    return (name,)


@st.composite
def bucket_configs(draw: st.DrawFn) -> tuple[float, float, float | None, float]:
    rate = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0, 7]) | st.floats(0.01, 100.0))
    # At least one token: a smaller bucket is refused at construction.
    capacity = draw(st.sampled_from([1.0, 2.0, 5.0, 1.5, 3]) | st.floats(1.0, 50.0))
    tokens = draw(
        st.none() | st.sampled_from([0.0, 0.5, 1.0]).map(lambda k: k * capacity) | st.just(0)
    )
    return rate, capacity, tokens, draw(CLOCK_STARTS)


def compare_buckets(pair: Pair, label: str) -> None:
    for name in ("rate", "capacity", "granted", "rejected"):
        pair.get(label, name)
    pair.check_repr(label)
    pair.call(label, "tokens_at", now=pair.past)  # no refill backwards: the current count
    pair.check_clocks(label)


@given(config=bucket_configs(), ops=op_lists(bucket_op, max_size=60))
def test_token_bucket(
    twins: Twins, config: tuple[float, float, float | None, float], ops: list[Op]
) -> None:
    rate, capacity, initial, start = config
    pair = build(
        "TokenBucket",
        lambda ns, clock: ns.TokenBucket(rate, capacity, tokens=initial, clock=clock),
        twins,
        start,
    )
    assert pair is not None
    fill = capacity / rate
    units = {"fill": fill}

    def tokens_kwargs(spec: Op) -> dict[str, Any]:
        if spec[0] == "omit":
            return {}
        if spec[0] == "cap":
            return {"tokens": spec[1] * capacity}
        return {"tokens": spec[1]}

    def apply(op: Op, label: str) -> None:
        name = op[0]
        if name in ("try_acquire", "wait_time", "refund"):
            kw = tokens_kwargs(op[1])
            result = pair.call(label, name, **kw, **when_kwargs(op[2], pair, fill))
            if result is False:
                event("try_acquire refused")
            elif result == math.inf:
                event("wait_time is inf")
        elif name == "reserve":
            kw = tokens_kwargs(op[1])
            if op[2][0] == "fill":
                kw["max_wait"] = op[2][1] * fill
            elif op[2][0] == "abs":
                kw["max_wait"] = op[2][1]
            result = pair.call(label, name, **kw, **when_kwargs(op[3], pair, fill))
            if type(result) is float and result > 0.0:
                event("reserve into debt")
            elif result == -1.0:
                event("reserve refused")
        elif name == "set_rate":
            pair.call(label, name, op[1], **when_kwargs(op[2], pair, fill))
        elif name == "tokens_at":
            pair.call(label, name, **when_kwargs(op[1], pair, fill))
        elif name == "available":
            pair.get(label, name)
        elif name == "advance":
            pair.advance(label, advance_amount(op[1], units))
        elif name == "advance_wait_time":  # then the tokens must be there
            wait = pair.call(label, "wait_time", **tokens_kwargs(op[1]))
            if type(wait) is float and wait < math.inf:
                pair.advance(label, wait)
                pair.call(label + " (after the wait)", "try_acquire", **tokens_kwargs(op[1]))
        else:
            assert name == "bad_clock", name
            pair.with_bad_clock(op[1], lambda: apply(op[2], label + " (bad clock)"))

    compare_buckets(pair, "start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        apply(op, label)
        compare_buckets(pair, label)


def empty_bucket(rate: float, capacity: float) -> Callable[[SimpleNamespace, Any], Any]:
    def make(ns: SimpleNamespace, clock: ScriptedClock) -> Any:
        return ns.TokenBucket(rate, capacity, tokens=0.0, clock=clock)

    return make


@pytest.mark.parametrize("start", [*EXTREME_STARTS, 0.0, -50.0])
def test_token_bucket_wait_then_take_at_extreme_starts(twins: Twins, start: float) -> None:
    """Waiting what ``wait_time`` says, then taking, succeeds on both twins, at clocks
    far from zero too (there rounding loses most, and the slack must cover it)."""
    for rate, capacity in [(1.0, 1.0), (3.0, 2.0), (0.7, 5.0), (1e3, 1.0), (1e-3, 1.5)]:
        for tokens in (1.0, 0.3, capacity):
            pair = build("TokenBucket", empty_bucket(rate, capacity), twins, start)
            assert pair is not None
            for k in range(12):
                label = f"rate {rate}, capacity {capacity}, {tokens} tokens, wait #{k}"
                if k % 2:  # the limiter's way: reserve, then sleep the wait it gives
                    pair.advance(label, pair.call(label, "reserve", tokens, math.inf))
                    continue
                pair.advance(label, pair.call(label, "wait_time", tokens))
                assert pair.call(label, "try_acquire", tokens) is True, label
                compare_buckets(pair, label)


# -- SemaphoreCore ------------------------------------------------------------------------

GOOD_LIMITS = st.integers(1, 5)
BAD_LIMITS = [sys.maxsize, 0, -1, 1.5, True, "2", None, sys.maxsize + 1, 2**70]
SEMAPHORE_PROPS = ("limit", "active", "available", "waiting", "acquired", "rejected")
# The queue methods are called the way the Bulkhead calls them, and out of turn:
# ``hand_over``/``leave_queue`` with nobody queued, ``release_unless_queued``
# with nothing held. ``pass_on`` is the Bulkhead's release: give the permit
# back, or, when it was kept for the queue, hand it to the first waiter.
# ``crowd`` calls ``acquire_or_queue`` until a caller is queued, at most op[1] times.
SEMAPHORE_NAMES = Table(
    (["try_acquire", "acquire_or_queue"], 5),
    (["release", "pass_on"], 3),
    (["release_unless_queued", "hand_over", "leave_queue", "crowd"], 2),
    (["reject", "set_limit"], 1),
)
COUNT_REJECTION = Table(
    ([("omit",)], 4), ([(True,), (False,)], 2), ([(0,), (1,), (None,), ("",), ("x",)], 1)
)
SEMAPHORE_MILESTONES = {
    "queued",
    "queued behind the queue with a permit free",
    "refused: someone is queued with a permit free",
    "permit kept for the queue",
    "handed over",
    "left the queue",
    "nobody is queued",
    "no permit held",
}


def semaphore_op(draw: st.DrawFn) -> Op:
    name = SEMAPHORE_NAMES.draw(draw)
    if name == "try_acquire":
        return (name, COUNT_REJECTION.draw(draw))
    if name == "set_limit":
        return (name, draw(GOOD_LIMITS | st.sampled_from(BAD_LIMITS)))
    if name == "crowd":
        return (name, draw(st.integers(1, 6)))
    return (name,)


SEMAPHORE_OPS = op_lists(semaphore_op, 40)


def run_semaphore(twins: Twins, limit: Any, ops: list[Op], every_step: bool = True) -> set[str]:
    """Drives both twins' SemaphoreCore through ``ops``; the milestones reached."""
    reached: set[str] = set()
    pair = build("SemaphoreCore", lambda ns, clock: ns.SemaphoreCore(limit), twins, 0.0)
    if pair is None:
        return reached

    def compare(label: str) -> None:
        for name in SEMAPHORE_PROPS:
            pair.get(label, name)
        pair.check_repr(label)

    def note(result: Any) -> None:
        if isinstance(result, Raised):
            if result.message == "nobody is queued":
                reached.add("nobody is queued")
            elif "no permit held" in result.message:
                reached.add("no permit held")

    compare("start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        name = op[0]
        free = pair.p.active < pair.p.limit
        queued = pair.p.waiting > 0
        if name == "try_acquire":
            args = () if op[1] == ("omit",) else op[1]
            if pair.call(label, name, *args) is False:
                reached.add("try_acquire refused")
                if free and queued:
                    reached.add("refused: someone is queued with a permit free")
        elif name in ("acquire_or_queue", "crowd"):
            for k in range(1 if name == "acquire_or_queue" else op[1]):
                free = pair.p.active < pair.p.limit
                step = label if name == "acquire_or_queue" else f"{label} #{k}"
                if pair.call(step, "acquire_or_queue") is False:
                    reached.add("queued")
                    if free:
                        reached.add("queued behind the queue with a permit free")
                    break
        elif name in ("release_unless_queued", "pass_on"):
            result = pair.call(label, "release_unless_queued")
            note(result)
            if result is False:
                reached.add("permit kept for the queue")
                if name == "pass_on":
                    note(pair.call(label + " (hand over)", "hand_over"))
                    if every_step:
                        compare(label + " (kept)")
        elif name in ("hand_over", "leave_queue"):
            result = pair.call(label, name)
            note(result)
            if result is None:
                reached.add("handed over" if name == "hand_over" else "left the queue")
        elif name == "set_limit":
            pair.call(label, name, op[1])
        else:
            note(pair.call(label, name))
        if every_step:
            compare(label)
    compare("end")
    return reached


@given(limit=GOOD_LIMITS | st.sampled_from(BAD_LIMITS), ops=SEMAPHORE_OPS)
def test_semaphore_core(twins: Twins, limit: Any, ops: list[Op]) -> None:
    report(run_semaphore(twins, limit, ops))


def test_semaphore_strategies_reach_the_queue(twins: Twins) -> None:
    """As for the breaker: the semaphore strategies reach every queue milestone."""
    found = find(
        st.tuples(GOOD_LIMITS, SEMAPHORE_OPS),
        lambda case: SEMAPHORE_MILESTONES.issubset(
            run_semaphore(twins, case[0], case[1], every_step=False)
        ),
        settings=COVERAGE_SETTINGS,
        random=Random(0),
    )
    assert run_semaphore(twins, found[0], found[1]) >= SEMAPHORE_MILESTONES


def test_semaphore_scripted_queue(twins: Twins) -> None:
    """The Bulkhead's use of the queue methods, compared on both twins at every step."""
    script: list[Op] = [
        ("hand_over",),  # nobody is queued
        ("leave_queue",),  # nobody is queued
        ("release_unless_queued",),  # no permit held
        ("acquire_or_queue",),  # the one permit
        ("acquire_or_queue",),  # queued
        ("try_acquire", ("omit",)),  # refused, counted
        ("acquire_or_queue",),  # queued second
        ("pass_on",),  # kept for the first waiter and handed over
        ("leave_queue",),  # the second one gives up
        ("set_limit", 3),
        ("acquire_or_queue",),  # nobody queued, a permit free
        ("acquire_or_queue",),
        ("acquire_or_queue",),  # queued
        ("release",),  # a permit free, but someone is queued
        ("try_acquire", (False,)),  # refused, not counted
        ("acquire_or_queue",),  # queued behind the queue with a permit free
        ("hand_over",),
        ("hand_over",),
        ("release_unless_queued",),
        ("pass_on",),
        ("reject",),
    ]
    assert run_semaphore(twins, 1, script) >= SEMAPHORE_MILESTONES


# -- CountWindow and TimeWindow -------------------------------------------------------------

FLAGS = Table(([False, True], 6), ([0, 1, 2, None, "", "x", 0.0], 1))
SLOW_FLAGS = Table(([("omit",)], 4), ([(False,), (True,)], 3), ([(None,), (2,), ("",)], 1))
COUNT_WHEN = Table(([("omit",)], 4), ([("none",), ("abs", 3.5), ("abs", -1.0), ("bad", "x")], 1))
COUNT_WINDOW_NAMES = Table((["record"], 8), (["totals"], 2), (["reset"], 1))


def count_window_op(draw: st.DrawFn) -> Op:
    name = COUNT_WINDOW_NAMES.draw(draw)
    if name == "record":
        return (name, FLAGS.draw(draw), SLOW_FLAGS.draw(draw), COUNT_WHEN.draw(draw))
    if name == "totals":
        return (name, COUNT_WHEN.draw(draw))
    return (name,)


@given(
    size=st.integers(1, 6) | st.sampled_from([0, -1, True, 2.0, "3", None]),
    ops=op_lists(count_window_op, 50),
)
def test_count_window(twins: Twins, size: Any, ops: list[Op]) -> None:
    pair = build("CountWindow", lambda ns, clock: ns.CountWindow(size), twins, 0.0)
    if pair is None:
        return

    def compare(label: str) -> None:
        pair.get(label, "size")
        pair.call(label, "totals")
        pair.check_repr(label)

    compare("start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        if op[0] == "record":
            slow = () if op[2] == ("omit",) else op[2]
            pair.call(label, "record", op[1], *slow, **when_kwargs(op[3], pair, 1.0))
        elif op[0] == "totals":
            pair.call(label, "totals", **when_kwargs(op[1], pair, 1.0))
        else:
            pair.call(label, op[0])
        compare(label)


TIME_WINDOW_NAMES = Table(
    (["record"], 8), (["advance"], 6), (["totals"], 3), (["reset", "bad_clock"], 1)
)
TIME_WINDOW_ADVANCES = Table(
    (rows("width", [0.3, 0.5, 1.0, 1.5, 2.0, 3.0]), 2),
    (rows("dur", [0.5, 0.9, 1.0, 1.1, 2.0]), 1),
    ([("width", st.floats(0.0, 4.0))], 6),
    ([("raw", st.floats(0.0, 20.0))], 1),
)


def time_window_op(draw: st.DrawFn, nested: bool = False) -> Op:
    name = TIME_WINDOW_NAMES.draw(draw)
    if name == "record" or (name == "bad_clock" and nested):
        return ("record", FLAGS.draw(draw), SLOW_FLAGS.draw(draw), WHEN.draw(draw))
    if name == "totals":
        return (name, WHEN.draw(draw))
    if name == "advance":
        return (name, TIME_WINDOW_ADVANCES.draw(draw))
    if name == "bad_clock":
        return (name, draw(st.sampled_from(BAD_READINGS)), time_window_op(draw, nested=True))
    return (name,)


@st.composite
def time_window_configs(draw: st.DrawFn) -> tuple[Any, Any, float]:
    duration = draw(
        st.sampled_from([1.0, 2.0, 5.0, 0.3, 10.0, 3])
        | st.floats(0.01, 50.0)
        | st.sampled_from([0, -1.0, math.nan, math.inf, "5", None])
    )
    buckets = draw(st.none() | st.integers(1, 12) | st.sampled_from([0, -1, 2.0, True, "3"]))
    return duration, buckets, draw(CLOCK_STARTS)


@given(config=time_window_configs(), ops=op_lists(time_window_op, 60))
def test_time_window(twins: Twins, config: tuple[Any, Any, float], ops: list[Op]) -> None:
    duration, buckets, start = config
    args = (duration,) if buckets is None else (duration, buckets)
    pair = build("TimeWindow", lambda ns, clock: ns.TimeWindow(*args, clock=clock), twins, start)
    if pair is None:
        return
    units = {"width": duration / pair.c.buckets, "dur": duration}

    def apply(op: Op, label: str) -> None:
        if op[0] == "record":
            slow = () if op[2] == ("omit",) else op[2]
            pair.call(label, "record", op[1], *slow, **when_kwargs(op[3], pair, units["width"]))
        elif op[0] == "totals":
            pair.call(label, "totals", **when_kwargs(op[1], pair, units["width"]))
        elif op[0] == "reset":
            pair.call(label, "reset")
        elif op[0] == "advance":
            pair.advance(label, advance_amount(op[1], units))
        else:
            assert op[0] == "bad_clock", op
            pair.with_bad_clock(op[1], lambda: apply(op[2], label + " (bad clock)"))

    def compare(label: str) -> Any:
        pair.get(label, "duration")
        pair.get(label, "buckets")
        pair.check_repr(label)
        pair.check_clocks(label)
        return pair.call(label, "totals", now=pair.past)  # no eviction: the running totals

    last = compare("start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        apply(op, label)
        totals = pair.call(label, "totals")  # at the clock: evicts what time has passed
        if totals[0] < last[0] and op[0] != "reset":
            event("time window evicted")
        last = compare(label)


# -- Counters ------------------------------------------------------------------------------


class Index(int):
    """An int subclass: a valid index, with a repr of its own in messages."""

    def __repr__(self) -> str:
        return f"Index({int(self)})"


GOOD_SIZES = st.integers(1, 6)
# Sizes that pass validation but cannot be allocated: MemoryError from both.
UNALLOCATABLE_SIZES = [2**61, sys.maxsize]
BAD_SIZES = [0, -1, True, False, 2.0, "3", None, sys.maxsize + 1, 2**70, -(2**70)]
COUNTERS_NAMES = Table((["add"], 4), (["repeat"], 1))
# ``("at", i)`` is an index as given; ``("last",)`` and ``("size",)`` are
# relative to the size: the last counter, one past it.
COUNTER_INDEXES = Table(
    ([("at", 0), ("last",)], 4),
    ([("at", st.integers(0, 7))], 6),
    ([("size",)], 2),
    (rows("at", [-1, 2**63 - 1, 2**63, 2**64, 2**70, -(2**70), Index(0)]), 1),
    (rows("at", [0.0, 1.0, True, False, None, "0", math.nan]), 1),
)
# ``("omit",)`` leaves n at its default of 1; ``kw`` passes it by keyword.
COUNTER_STEPS = Table(
    ([("omit",)], 6),
    (rows("n", [0, 1, 2]), 2),
    ([("n", st.integers(0, 1000)), ("kw", st.integers(0, 10))], 3),
    (rows("n", [sys.maxsize, 2**62, 2**63 - 2, 2**32, Index(3)]), 2),
    (rows("n", [-1, 2**63, 2**64, 2**70, -(2**70)]), 1),
    (rows("n", [1.0, 0.0, math.inf, math.nan, True, False, None, "1"]), 1),
)


def counters_op(draw: st.DrawFn) -> Op:
    name = COUNTERS_NAMES.draw(draw)
    if name == "add":
        return (name, COUNTER_INDEXES.draw(draw), COUNTER_STEPS.draw(draw))
    # "repeat": the same add a few times, so that sums grow fast, towards the top
    return (name, draw(st.integers(2, 4)), COUNTER_INDEXES.draw(draw), COUNTER_STEPS.draw(draw))


# Two sizes in three are good ones.
COUNTER_SIZES = st.one_of(
    GOOD_SIZES, st.integers(1, 3), st.sampled_from(BAD_SIZES + UNALLOCATABLE_SIZES)
)


@given(size=COUNTER_SIZES, ops=op_lists(counters_op, 40))
def test_counters(twins: Twins, size: Any, ops: list[Op]) -> None:
    pair = build("Counters", lambda ns, clock: ns.Counters(size), twins, 0.0)
    if pair is None:
        event("Counters: both raised")
        return

    def compare(label: str) -> None:
        pair.call(label, "snapshot")
        pair.call(label, "__len__")
        pair.check_repr(label)

    def add(label: str, index_spec: Op, step: Op) -> Any:
        if index_spec[0] == "last":
            index = size - 1
        elif index_spec[0] == "size":
            index = size
        else:
            index = index_spec[1]
        if step[0] == "omit":
            return pair.call(label, "add", index)
        if step[0] == "kw":
            return pair.call(label, "add", index, n=step[1])
        return pair.call(label, "add", index, step[1])

    compare("start")
    last = pair.p.snapshot()
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        if op[0] == "add":
            result = add(label, op[1], op[2])
        else:
            for k in range(op[1]):
                result = add(f"{label} #{k}", op[2], op[3])
        if isinstance(result, Raised):
            event(f"add raised {result.kind.__name__}")
        compare(label)
        now = pair.p.snapshot()
        if any(b < a for a, b in zip(last, now, strict=True)):
            event("a counter wrapped")
        elif max(now) > sys.maxsize:
            event("a counter above sys.maxsize")
        last = now


# -- construction ----------------------------------------------------------------------------

NUMBERS = [1.0, 0.5, 2, 30.0, 0, 0.0, -1.0, math.nan, math.inf, "1", True, None, 10**400, 1e-300]
RATIOS = [None, 0.5, 1.0, 1, 0.0, 1.5, -0.1, math.nan, "0.5", True]
COUNTS = [1, 3, 0, -1, 2.0, True, "2", None, sys.maxsize + 1]


def argument(data: st.DataObject, label: str, good: Sequence[Any], bad: Sequence[Any]) -> Any:
    """Mostly a good value, sometimes one of the edge or bad ones."""
    pool = bad if data.draw(st.integers(0, 7), label=f"{label} is odd") == 0 else good
    return data.draw(st.sampled_from(pool), label=label)


@given(
    kind=st.sampled_from(
        ["TokenBucket", "BreakerCore", "SemaphoreCore", "CountWindow", "TimeWindow", "Counters"]
    ),
    data=st.data(),
)
def test_construction(twins: Twins, kind: str, data: st.DataObject) -> None:
    """Constructor arguments, good and bad: the same object or the same exception."""
    pos = [0.5, 1.0, 2, 30.0]
    clock_spec = argument(
        data, "clock", ["fake"], [5, "clock", *(lambda v=v: v for v in BAD_READINGS)]
    )
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if kind == "TokenBucket":
        args = (argument(data, "rate", pos, NUMBERS), argument(data, "capacity", pos, NUMBERS))
        kwargs = {"tokens": argument(data, "tokens", [None, 0, 0.5], NUMBERS)}
        props: tuple[str, ...] = ("rate", "capacity", "granted", "rejected")
    elif kind == "BreakerCore":
        kwargs = {
            "failure_threshold": argument(data, "failure_threshold", [0, 1, 5], COUNTS),
            "failure_rate": argument(data, "failure_rate", [None, 0.5, 1], RATIOS),
            "slow_call_duration": argument(data, "slow_call_duration", [None, *pos], NUMBERS),
            "slow_call_rate": argument(data, "slow_call_rate", [None, 0.25, 1.0], RATIOS),
            "window": argument(data, "window", [1, 10, 100], COUNTS),
            "window_duration": argument(data, "window_duration", [None, *pos], NUMBERS),
            "minimum_calls": argument(data, "minimum_calls", [1, 5, 200], COUNTS),
            "reset_timeout": argument(data, "reset_timeout", pos, NUMBERS),
            "reset_timeout_max": argument(data, "reset_timeout_max", [None, *pos], NUMBERS),
            "half_open_calls": argument(data, "half_open_calls", [1, 2, 3], COUNTS),
            "listener": argument(data, "listener", [None, print], ["log", 3]),
        }
        props = BREAKER_PROPS
    elif kind == "SemaphoreCore":
        args = (argument(data, "limit", [1, 2, 10], COUNTS),)
        props = SEMAPHORE_PROPS
    elif kind == "Counters":
        args = (argument(data, "size", [1, 2, 10], COUNTS),)
        props = ()
    elif kind == "CountWindow":
        args = (argument(data, "size", [1, 2, 10], COUNTS),)
        props = ("size",)
    else:
        args = (
            argument(data, "duration", [*pos, 100.0, 1000.0], NUMBERS),
            argument(data, "buckets", [None, 1, 7], COUNTS),
        )
        props = ("duration", "buckets")
    uses_clock = kind in ("TokenBucket", "BreakerCore", "TimeWindow")

    def make(ns: SimpleNamespace, clock: ScriptedClock) -> Any:
        extra = {"clock": clock if clock_spec == "fake" else clock_spec} if uses_clock else {}
        return getattr(ns, kind)(*args, **kwargs, **extra)

    pair = build(kind, make, twins, 0.0)
    if pair is None:
        event(f"{kind}: both raised")
        return
    event(f"{kind}: both built")
    for name in props:
        pair.get("built", name)
    if kind == "Counters":
        pair.call("built", "snapshot")
        pair.call("built", "__len__")
    pair.check_repr("built")


@pytest.mark.parametrize(
    ("kind", "args", "kwargs"),
    [
        ("TimeWindow", (1.0, 2**61), {}),
        ("TimeWindow", (1.0, 2**62), {}),
        ("TimeWindow", (1.0, sys.maxsize), {}),
        ("CountWindow", (sys.maxsize,), {}),
        ("Counters", (2**61,), {}),
        ("Counters", (sys.maxsize,), {}),
        ("BreakerCore", (), {"half_open_calls": 2**61}),
        ("BreakerCore", (), {"half_open_calls": sys.maxsize}),
    ],
)
def test_counts_too_large_to_allocate(
    twins: Twins, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Counts that pass validation but cannot be allocated: MemoryError from both.

    Only construction is compared: a compiled object built with such a count
    could write past its buffers when used.
    """
    build(kind, lambda ns, clock: getattr(ns, kind)(*args, **kwargs), twins, 0.0)


# -- arguments far outside the strategies' ranges ---------------------------------------------

EXTREME_TIMES = st.floats(allow_nan=False, allow_infinity=False)


@given(
    duration=st.sampled_from([1.0, 0.3, 10.0]),
    start=CLOCK_STARTS,
    ops=st.lists(
        st.tuples(st.sampled_from(["record", "totals"]), st.booleans(), EXTREME_TIMES),
        min_size=1,
        max_size=12,
    ),
)
def test_time_window_at_extreme_timestamps(
    twins: Twins, duration: float, start: float, ops: list[Op]
) -> None:
    """Any finite ``now`` is valid; far-off ones must not split the twins either."""
    pair = build("TimeWindow", lambda ns, clock: ns.TimeWindow(duration, clock=clock), twins, start)
    assert pair is not None
    for i, (name, failure, now) in enumerate(ops):
        label = f"step {i} {name}(now={now!r})"
        if name == "record":
            pair.call(label, "record", failure, now=now)
        else:
            pair.call(label, "totals", now=now)
        pair.check_repr(label)


@given(
    rate=st.sampled_from([1.0, 1e-3, 1e6]),
    start=CLOCK_STARTS,
    ops=st.lists(
        st.tuples(
            st.sampled_from(["try_acquire", "wait_time", "reserve", "refund", "tokens_at"]),
            st.sampled_from([0.0, 0.5, 1.0, 2.0]),
            EXTREME_TIMES,
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_token_bucket_at_extreme_timestamps(
    twins: Twins, rate: float, start: float, ops: list[Op]
) -> None:
    pair = build(
        "TokenBucket", lambda ns, clock: ns.TokenBucket(rate, 2.0, clock=clock), twins, start
    )
    assert pair is not None
    for i, (name, tokens, now) in enumerate(ops):
        label = f"step {i} {name}({tokens!r}, now={now!r})"
        if name == "tokens_at":
            pair.call(label, name, now=now)
        else:
            pair.call(label, name, tokens, now=now)
        for prop in ("rate", "capacity", "granted", "rejected"):
            pair.get(label, prop)
        pair.check_repr(label)


@given(
    config=breaker_configs(timed=True),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "record_failure", "record_success", "window_totals"]),
            EXTREME_TIMES,
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_breaker_at_extreme_timestamps(
    twins: Twins, config: tuple[dict[str, Any], float], ops: list[Op]
) -> None:
    kwargs, start = config
    logs: Logs = ([], [])
    pair = build("BreakerCore", make_breaker(kwargs, twins, logs), twins, start)
    assert pair is not None
    for i, (name, now) in enumerate(ops):
        label = f"step {i} {name}(now={now!r})"
        pair.call(label, name, now=now)
        for prop in BREAKER_PROPS:
            pair.get(label, prop)
        pair.check_repr(label)
        expect_same(f"{label}: listener log", logs[0], logs[1])


# -- LatencySketch and TimeWindow.add / trailing (the budgets' primitives) -------------


def lift(spec: Any) -> st.SearchStrategy[Any]:
    """A strategy for ``spec``: itself, a tuple of drawn parts, or the value."""
    if isinstance(spec, st.SearchStrategy):
        return spec
    if isinstance(spec, tuple):
        return st.tuples(*(lift(part) for part in spec))
    return st.just(spec)


def weighted(*rows: tuple[list[Any], int]) -> st.SearchStrategy[Any]:
    """One draw from weighted alternatives; an alternative may itself hold strategies."""
    specs = [spec for options, weight in rows for spec in options for _ in range(weight)]
    return st.sampled_from(specs).flatmap(lift)


# -- LatencySketch ---------------------------------------------------------------------------

SKETCH_ERRORS = weighted(
    ([0.01, 0.05], 8),
    ([0.5, 0.2, 0.002, st.floats(0.002, 0.5)], 2),
    ([st.sampled_from([0.0, 0.6, 1e-5, -0.01, math.nan, math.inf, True, "0.01", None])], 3),
)
EDGES = st.integers(-1000, 1000).map(lambda k: ((1 + 0.01) / (1 - 0.01)) ** k)
SKETCH_VALUES = weighted(
    ([st.floats(0.0, 10.0), st.floats(1e-3, 1e6)], 6),
    ([0.0, 0, 5e-10, 1e-9, 1.0000000000000002e-9, 1e6, 3, 10**6, EDGES], 2),
    ([2e7, 1e300, st.floats(0.0, 1e-8), st.floats(1e6, 1e12)], 1),
    ([-1.0, -0.0, math.nan, math.inf, True, "1", None, 10**400], 1),
)
SKETCH_NS = weighted(
    ([("omit",)], 8),
    ([("n", 1), ("n", st.integers(2, 1000)), ("kw", st.integers(1, 50))], 2),
    ([("n", 2**40), ("n", 0), ("n", -1), ("n", 1.0), ("n", True), ("n", sys.maxsize + 1)], 1),
)
QUANTILES = weighted(
    ([st.floats(0.0, 1.0)], 4),
    ([0.0, 1.0, 0.5, 0.99, 0, 1, 5e-324, 1.0 - 2**-53], 2),
    ([-0.1, 1.1, math.nan, math.inf, "0.5", True, None], 1),
)
SKETCH_NAMES = weighted(
    (["add"], 10),
    (["add_other", "quantile"], 4),
    (["merge"], 2),
    (["clear", "clear_other", "merge_self", "merge_cross", "merge_mismatch", "merge_bad"], 1),
)
GRID = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0)


@st.composite
def sketch_op(draw: st.DrawFn) -> Op:
    name = draw(SKETCH_NAMES)
    if name in ("add", "add_other"):
        return (name, draw(SKETCH_VALUES), draw(SKETCH_NS))
    if name == "quantile":
        return (name, draw(QUANTILES))
    if name == "merge_bad":
        return (name, draw(st.sampled_from([None, 1.0, "sketch", []])))
    return (name,)


def compare_sketches(label: str, pair: Pair) -> None:
    for prop in ("count", "sum", "min", "max", "relative_error", "buckets"):
        pair.get(label, prop)
    for q in GRID:
        pair.call(label, "quantile", q)
    pair.check_repr(label)


@given(
    a=SKETCH_ERRORS,
    mismatch=st.sampled_from([0.02, 0.011, 0.5]),
    ops=st.lists(sketch_op(), min_size=5, max_size=40),
)
def test_latency_sketch(twins: Twins, a: Any, mismatch: float, ops: list[Op]) -> None:
    pair = build("LatencySketch", lambda ns, clock: ns.LatencySketch(a), twins, 0.0)
    if pair is None:
        event("LatencySketch: both raised")
        return
    other = build("other", lambda ns, clock: ns.LatencySketch(a), twins, 0.0)
    assert other is not None
    odd = build("mismatch", lambda ns, clock: ns.LatencySketch(mismatch), twins, 0.0)
    assert odd is not None
    compare_sketches("start", pair)
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        name = op[0]
        if name in ("add", "add_other"):
            target = pair if name == "add" else other
            value, n = op[1], op[2]
            if n[0] == "omit":
                target.call(label, "add", value)
            elif n[0] == "kw":
                target.call(label, "add", value, n=n[1])
            else:
                target.call(label, "add", value, n[1])
        elif name == "quantile":
            pair.call(label, "quantile", op[1])
        elif name == "merge":
            expect_same(label, outcome(pair.c.merge, other.c), outcome(pair.p.merge, other.p))
        elif name == "merge_self":
            expect_same(label, outcome(pair.c.merge, pair.c), outcome(pair.p.merge, pair.p))
        elif name == "merge_cross":  # the other twin's sketch: a TypeError from both
            expect_same(label, outcome(pair.c.merge, pair.p), outcome(pair.p.merge, pair.c))
        elif name == "merge_mismatch":
            result = (outcome(pair.c.merge, odd.c), outcome(pair.p.merge, odd.p))
            expect_same(label, *result)
            if isinstance(result[0], Raised):
                event("merge: relative errors differ")
        elif name == "merge_bad":
            pair.call(label, "merge", op[1])
        elif name == "clear":
            pair.call(label, "clear")
        else:
            other.call(label, "clear")
        compare_sketches(label, pair)
        compare_sketches(label + " (other)", other)


# -- TimeWindow add and trailing -----------------------------------------------------------

ADD_COUNTS = weighted(
    ([st.integers(0, 5)], 8),
    ([st.integers(6, 10**6), 2**40], 1),
    ([-1, True, False, 1.0, "2", None, sys.maxsize + 1], 1),
)
# ``now=``: omitted, relative to the clock in slice widths (often in the past), or bad.
WHENS = weighted(
    ([("omit",)], 10),
    ([("none",), ("at", st.floats(-3.0, 3.0)), ("at", -1.0), ("at", 0.999)], 2),
    ([("abs", st.floats(-100.0, 1e4)), ("past",)], 1),
    ([("bad", st.sampled_from([math.nan, math.inf, "now", True, 10**400]))], 1),
)
# ``trailing`` seconds, in slice widths.
SPANS = weighted(
    ([st.floats(0.001, 12.0)], 6),
    ([("raw", 0.5), 1.0, 0.999, 1.001, 2.0, 5.0, 1e9, ("raw", 1e-300)], 2),
    ([("raw", st.sampled_from([0, 0.0, -1.0, math.nan, math.inf, True, "1", None]))], 1),
)
WINDOW_NAMES = weighted(
    (["add"], 8),
    (["advance"], 6),
    (["trailing"], 5),
    (["record", "totals"], 2),
    (["reset"], 1),
)


def span(spec: Any, width: float) -> Any:
    if isinstance(spec, tuple):
        return spec[1]
    return spec * width


@st.composite
def window_op(draw: st.DrawFn) -> Op:
    name = draw(WINDOW_NAMES)
    if name == "add":
        calls = draw(ADD_COUNTS)
        # mostly consistent counts, sometimes more failures or slow calls than calls
        limit = calls if type(calls) is int and 0 <= calls <= 10**6 else 5
        failures = draw(weighted(([st.integers(0, max(0, limit))], 8), ([ADD_COUNTS], 1)))
        slow = draw(weighted(([st.integers(0, max(0, limit))], 8), ([ADD_COUNTS], 1)))
        form = draw(st.sampled_from(["positional", "keywords", "calls_only"]))
        return (name, calls, failures, slow, form, draw(WHENS))
    if name == "advance":
        return (name, draw(st.floats(0.0, 4.0) | st.sampled_from([1.0, 0.5, 10.0, 100.0])))
    if name == "trailing":
        return (name, draw(SPANS), draw(WHENS))
    if name == "record":
        return (name, draw(st.booleans()), draw(st.booleans()), draw(WHENS))
    if name == "totals":
        return (name, draw(WHENS))
    return (name,)


@st.composite
def window_configs(draw: st.DrawFn) -> tuple[Any, Any, float]:
    duration = draw(
        st.sampled_from([1.0, 10.0, 60.0, 3600.0, 21600.0, 0.3]) | st.floats(0.01, 1000.0)
    )
    buckets = draw(st.none() | st.integers(1, 12) | st.sampled_from([60, 360, 720]))
    return duration, buckets, draw(CLOCK_STARTS)


@given(config=window_configs(), ops=st.lists(window_op(), min_size=5, max_size=40))
def test_time_window_add_and_trailing(
    twins: Twins, config: tuple[Any, Any, float], ops: list[Op]
) -> None:
    duration, buckets, start = config
    pair = build(
        "TimeWindow", lambda ns, clock: ns.TimeWindow(duration, buckets, clock=clock), twins, start
    )
    assert pair is not None
    width = pair.get("start", "width")
    n = pair.get("start", "buckets")
    assert width == duration / n

    def compare(label: str) -> Any:
        for prop in ("width", "duration", "buckets"):
            pair.get(label, prop)
        pair.check_repr(label)
        pair.check_clocks(label)
        for k in (0.5, 1.0, 1.5, 2.0, 3.0, n - 1.0, n - 0.5, float(n), n + 1.0):
            if k > 0:
                pair.call(label, "trailing", k * width, now=pair.past)
        return pair.call(label, "totals", now=pair.past)

    last = compare("start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        name = op[0]
        if name == "add":
            _, calls, failures, slow, form, when = op
            kwargs = when_kwargs(when, pair, width)
            if form == "positional":
                pair.call(label, "add", calls, failures, slow, **kwargs)
            elif form == "keywords":
                pair.call(label, "add", calls=calls, failures=failures, slow=slow, **kwargs)
            else:
                pair.call(label, "add", calls, **kwargs)
        elif name == "advance":
            pair.advance(label, op[1] * width)
        elif name == "trailing":
            pair.call(label, "trailing", span(op[1], width), **when_kwargs(op[2], pair, width))
        elif name == "record":
            pair.call(label, "record", op[1], op[2], **when_kwargs(op[3], pair, width))
        elif name == "totals":
            pair.call(label, "totals", **when_kwargs(op[1], pair, width))
        else:
            pair.call(label, "reset")
        totals = pair.call(label, "totals")
        if totals[0] < last[0] and name != "reset":
            event("time window evicted")
        last = compare(label)


# -- LatencyWindow ------------------------------------------------------------------------

LATENCY_WINDOW_NAMES = weighted(
    (["add"], 10),
    (["advance", "quantile", "count"], 3),
    (["clear"], 1),
)


@st.composite
def latency_window_op(draw: st.DrawFn) -> Op:
    name = draw(LATENCY_WINDOW_NAMES)
    if name == "add":
        return (name, draw(SKETCH_VALUES), draw(SKETCH_NS), draw(WHENS))
    if name == "advance":
        return (name, draw(st.floats(0.0, 3.0) | st.sampled_from([0.999, 1.0, 7.0, 100.0])))
    if name == "quantile":
        return (name, draw(QUANTILES), draw(WHENS))
    if name == "count":
        return (name, draw(WHENS))
    return (name,)


@given(
    config=window_configs(),
    a=SKETCH_ERRORS,
    ops=st.lists(latency_window_op(), min_size=5, max_size=40),
)
def test_latency_window(
    twins: Twins, config: tuple[Any, Any, float], a: Any, ops: list[Op]
) -> None:
    duration, buckets, start = config
    slices = 6 if buckets is None else buckets

    def make(ns: SimpleNamespace, clock: Any) -> Any:
        return ns.LatencyWindow(duration, slices, a, clock=clock)

    pair = build("LatencyWindow", make, twins, start)
    if pair is None:
        event("LatencyWindow: both raised")
        return
    width = pair.get("start", "width")

    def compare(label: str) -> None:
        for prop in ("width", "duration", "buckets", "relative_error"):
            pair.get(label, prop)
        pair.check_repr(label)
        pair.call(label, "count", now=pair.past)
        merged = (pair.c.sketch(now=pair.past), pair.p.sketch(now=pair.past))
        for q in GRID:
            expect_same(f"{label}: sketch().quantile({q})", *(m.quantile(q) for m in merged))
        expect_same(f"{label}: sketch().count", *(m.count for m in merged))
        expect_same(f"{label}: sketch().sum", *(m.sum for m in merged))

    compare("start")
    for i, op in enumerate(ops):
        label = f"step {i} {op!r}"
        name = op[0]
        if name == "add":
            _, value, n, when = op
            kwargs = when_kwargs(when, pair, width)
            if n[0] == "omit":
                pair.call(label, "add", value, **kwargs)
            elif n[0] == "kw":
                pair.call(label, "add", value, n=n[1], **kwargs)
            else:
                pair.call(label, "add", value, n[1], **kwargs)
        elif name == "advance":
            pair.advance(label, op[1] * width)
        elif name == "quantile":
            pair.call(label, "quantile", op[1], **when_kwargs(op[2], pair, width))
        elif name == "count":
            pair.call(label, "count", **when_kwargs(op[1], pair, width))
        else:
            pair.call(label, name)
        compare(label)

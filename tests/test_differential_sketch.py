"""Differential tests for the budget primitives: LatencySketch and TimeWindow.add/trailing.

As in test_differential.py: the compiled and the pure object are built from
the same arguments, driven with the same operations, and after every step
everything either lets one observe is compared exactly — return values,
raised exception types and messages, counts, and floats bit for bit (by
``repr``: NaN equals NaN, 0.0 does not equal -0.0).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from resilience.testing import FakeClock

Twins = tuple[SimpleNamespace, SimpleNamespace]
Op = tuple[Any, ...]
PAST = -1e9  # a reading from the past: no eviction, the running state


class Raised:
    """A call that raised, compared by the exception's type and message."""

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
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # compared, never swallowed
        return Raised(exc)


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def expect_same(label: str, compiled: Any, pure: Any) -> None:
    assert same(compiled, pure), f"{label}: compiled {compiled!r} != pure {pure!r}"


class Pair:
    def __init__(self, compiled: Any, pure: Any, clocks: tuple[FakeClock, FakeClock]) -> None:
        self.c = compiled
        self.p = pure
        self.clocks = clocks

    @property
    def now(self) -> float:
        return self.clocks[0]()

    def call(self, label: str, name: str, *args: Any, **kwargs: Any) -> Any:
        rc = outcome(getattr(self.c, name), *args, **kwargs)
        rp = outcome(getattr(self.p, name), *args, **kwargs)
        expect_same(f"{label}: {name}{args!r}{kwargs!r}", rc, rp)
        return rc

    def get(self, label: str, name: str) -> Any:
        rc = outcome(getattr, self.c, name)
        rp = outcome(getattr, self.p, name)
        expect_same(f"{label}: .{name}", rc, rp)
        return rc

    def check_repr(self, label: str) -> None:
        expect_same(f"{label}: repr", repr(self.c), repr(self.p))

    def advance(self, seconds: float) -> None:
        for clock in self.clocks:
            clock.advance(seconds)


def build(label: str, make: Callable[[SimpleNamespace, FakeClock], Any], twins: Twins,
          start: float = 0.0) -> Pair | None:
    """Both objects, or None once both constructions raised alike."""
    clocks = (FakeClock(start), FakeClock(start))
    compiled = outcome(make, twins[0], clocks[0])
    pure = outcome(make, twins[1], clocks[1])
    if isinstance(compiled, Raised) or isinstance(pure, Raised):
        expect_same(f"{label}: construction", compiled, pure)
        return None
    return Pair(compiled, pure, clocks)


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
    pair = build("LatencySketch", lambda ns, clock: ns.LatencySketch(a), twins)
    if pair is None:
        event("LatencySketch: both raised")
        return
    other = build("other", lambda ns, clock: ns.LatencySketch(a), twins)
    assert other is not None
    odd = build("mismatch", lambda ns, clock: ns.LatencySketch(mismatch), twins)
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

COUNTS = weighted(
    ([st.integers(0, 5)], 8),
    ([st.integers(6, 10**6), 2**40], 1),
    ([-1, True, False, 1.0, "2", None, sys.maxsize + 1], 1),
)
# ``now=``: omitted, relative to the clock in slice widths (often in the past), or bad.
WHENS = weighted(
    ([("omit",)], 10),
    ([("none",), ("at", st.floats(-3.0, 3.0)), ("at", -1.0), ("at", 0.999)], 2),
    ([("abs", st.floats(-100.0, 1e4)), ("abs", PAST)], 1),
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


def when_kwargs(spec: Op, pair: Pair, width: float) -> dict[str, Any]:
    if spec[0] == "omit":
        return {}
    if spec[0] == "none":
        return {"now": None}
    if spec[0] == "at":
        return {"now": pair.now + spec[1] * width}
    return {"now": spec[1]}


def span(spec: Any, width: float) -> Any:
    if isinstance(spec, tuple):
        return spec[1]
    return spec * width


@st.composite
def window_op(draw: st.DrawFn) -> Op:
    name = draw(WINDOW_NAMES)
    if name == "add":
        calls = draw(COUNTS)
        # mostly consistent counts, sometimes more failures or slow calls than calls
        limit = calls if type(calls) is int and 0 <= calls <= 10**6 else 5
        failures = draw(weighted(([st.integers(0, max(0, limit))], 8), ([COUNTS], 1)))
        slow = draw(weighted(([st.integers(0, max(0, limit))], 8), ([COUNTS], 1)))
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
    start = draw(st.sampled_from([0.0, 0.1, 1000.5, -50.0, 1e9, 12345.678]))
    return duration, buckets, start


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
        expect_same(f"{label}: clocks", pair.clocks[0](), pair.clocks[1]())
        for k in (0.5, 1.0, 1.5, 2.0, 3.0, n - 1.0, n - 0.5, float(n), n + 1.0):
            if k > 0:
                pair.call(label, "trailing", k * width, now=PAST)
        return pair.call(label, "totals", now=PAST)

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
            pair.advance(op[1] * width)
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

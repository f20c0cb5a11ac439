"""Error and latency budgets: how much unreliability an SLO leaves, and how fast it goes.

``ErrorBudget`` counts good and bad events in fixed time buckets of the
compiled ``TimeWindow`` — one-minute buckets for the last six hours, one-hour
buckets for the rest of the window — so memory is fixed at construction
(about 26 KiB for the default 30 days, compiled) and a record is O(1). It
reports what is left of the budget, burn rates over trailing windows and
the multiwindow burn-rate alerts of Google's SRE workbook.

``LatencyBudget`` keeps a ``LatencySketch`` (log-bucketed, fixed relative
error) of the latencies recorded, over all time or over a sliding window,
and is exhausted while its target quantile is above the threshold.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from . import _core
from ._core import _fork
from ._core._clock_py import read_now
from ._core._nocopy import NoCopy
from ._core._validate import clock as check_clock
from ._core._validate import count, positive, slice_width
from ._core._validate import quantile as check_quantile
from ._policy import add_listener, check_name, logger, notify

__all__ = [
    "ALERT_RULES",
    "AlertRule",
    "BurnAlert",
    "ErrorBudget",
    "ErrorBudgetStats",
    "LatencyBudget",
    "LatencyBudgetStats",
]

MINUTE = 60.0
HOUR = 3600.0
FINE_SPAN = 6 * HOUR  # kept in buckets of at most a minute; beyond, at most an hour
MIN_FINE_BUCKETS = 60  # so that a short window still slides smoothly
# Memory follows the window (an hour's bucket each): a year and a day at most
# (about 220 KB, compiled).
MAX_WINDOW = 366 * 24 * HOUR


@dataclass(frozen=True)
class AlertRule:
    """Fire when both the long and the short window burn at or above ``burn_rate``."""

    severity: str
    long_window: float
    short_window: float
    burn_rate: float


@dataclass(frozen=True)
class BurnAlert(AlertRule):
    """A rule that is firing, with the burn rates measured over its two windows."""

    long_burn_rate: float
    short_burn_rate: float


# The SRE workbook's multiwindow, multi-burn-rate alerts for a 30-day SLO:
# 2% of the budget spent in an hour, 5% in six hours (page); 10% in three days
# (ticket). The short window makes an alert stop soon after the burn stops.
ALERT_RULES = (
    AlertRule("page", 3600.0, 300.0, 14.4),
    AlertRule("page", 21600.0, 1800.0, 6.0),
    AlertRule("ticket", 259200.0, 21600.0, 1.0),
)


@dataclass(frozen=True)
class ErrorBudgetStats:
    """A snapshot of an error budget over its whole window."""

    name: str | None
    slo: float
    window: float
    total: int
    bad: int
    remaining: float
    exhausted: bool


class ErrorBudget(NoCopy):
    """The error budget of an SLO (``slo`` in (0, 1): the fraction of good events).

    ``record(ok)`` counts events; ``remaining`` is ``1 - (bad/total) /
    (1 - slo)`` over the window (1.0 with no events, negative when
    overspent); ``burn_rate(seconds)`` is the same error ratio over the
    trailing ``seconds`` divided by ``1 - slo`` (1.0 spends the budget exactly
    over the window). Trailing windows are whole buckets, the current one
    included: a minute's precision up to six hours back, an hour's beyond,
    and at most the whole window. ``window`` is at most 366 days, and at
    least 60 microseconds (a bucket is never narrower than a microsecond).
    """

    def __init__(
        self,
        slo: float,
        *,
        window: float = 2592000.0,
        rules: Iterable[AlertRule] = ALERT_RULES,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._slo = positive("slo", slo)
        if self._slo >= 1.0:
            raise ValueError(f"slo must be in (0, 1), got {slo!r}")
        self._window = positive("window", window)
        if self._window > MAX_WINDOW:
            raise ValueError(f"window must be <= {MAX_WINDOW} s (366 days), got {window!r}")
        fine_span = min(self._window, FINE_SPAN)
        fine_buckets = max(MIN_FINE_BUCKETS, math.ceil(fine_span / MINUTE))
        slice_width("window", fine_span, fine_buckets)
        self._rules = check_rules(rules)
        self._name = check_name(name)
        self._clock = check_clock(clock)
        TimeWindow = _core.SELECTED.TimeWindow
        self._fine: _core.TimeWindow = TimeWindow(fine_span, fine_buckets, clock=self._clock)
        self._coarse: _core.TimeWindow | None = (
            TimeWindow(self._window, math.ceil(self._window / HOUR), clock=self._clock)
            if self._window > FINE_SPAN
            else None
        )
        self._whole: _core.TimeWindow = self._coarse or self._fine
        self._lock = _fork.lock()
        self._listeners: list[Callable[[ErrorBudget], object]] = []

    def record(self, ok: bool, n: int = 1) -> None:
        """Count ``n`` events, all good or all bad."""
        events = n if type(n) is int and 1 <= n <= sys.maxsize else count("n", n)
        now = read_now(self._clock, None)
        if ok:  # a good event cannot exhaust the budget: nothing to judge
            self._add(events, 0, now)
            return
        with self._lock:
            # Exhausted by this record: not before it, at this time, and so after it.
            was_left = self._remaining(now) > 0.0
            self._add(events, events, now)
            left = self._remaining(now)
            newly = was_left and left <= 0.0
        if newly:
            logger.warning(
                "error budget %r exhausted: %.4g left of SLO %s",
                self._name,
                left,
                self._slo,
                extra={
                    "resilience_event": "error_budget.exhausted",
                    "resilience_name": self._name,
                    "resilience_remaining": left,
                    "resilience_slo": self._slo,
                },
            )
            notify(self._listeners, self)

    def _add(self, events: int, bad: int, now: float) -> None:
        self._fine.add(events, bad, now=now)
        if self._coarse is not None:
            self._coarse.add(events, bad, now=now)

    def _remaining(self, now: float) -> float:
        return self._left(*self._whole.totals(now)[:2])

    def _left(self, total: int, bad: int) -> float:
        return 1.0 - (bad / total) / (1.0 - self._slo) if total else 1.0

    @property
    def remaining(self) -> float:
        """The fraction of the budget left over the window."""
        return self._remaining(read_now(self._clock, None))

    @property
    def exhausted(self) -> bool:
        """True while nothing is left (``remaining <= 0``)."""
        return self.remaining <= 0.0

    def burn_rate(self, seconds: float) -> float:
        """How fast the last ``seconds`` spend the budget (1.0: exactly over the window)."""
        return self.burn_rates(seconds)[0]

    def burn_rates(self, *seconds: float) -> tuple[float, ...]:
        """``burn_rate`` of each trailing span, all read at one moment."""
        spans = [positive("seconds", s) for s in seconds]
        now = read_now(self._clock, None)
        return tuple(self._burn(span, now) for span in spans)

    def _burn(self, span: float, now: float) -> float:
        ring = self._fine if span <= self._fine.duration or self._coarse is None else self._coarse
        total, bad, _ = ring.trailing(span, now=now)
        return (bad / total) / (1.0 - self._slo) if total else 0.0

    def alerts(self) -> list[BurnAlert]:
        """The alert rules firing now, in the order they were given."""
        windows = {w for rule in self._rules for w in (rule.long_window, rule.short_window)}
        return firing(self._rules, dict(zip(windows, self.burn_rates(*windows), strict=True)))

    def on_exhausted(
        self, callback: Callable[[ErrorBudget], object]
    ) -> Callable[[ErrorBudget], object]:
        """Call ``callback(budget)`` each time a record exhausts the budget (a decorator too)."""
        return add_listener(self._listeners, callback)

    def reset(self) -> None:
        """Forget every event."""
        with self._lock:
            self._fine.reset()
            if self._coarse is not None:
                self._coarse.reset()

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def slo(self) -> float:
        return self._slo

    @property
    def window(self) -> float:
        return self._window

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return self._rules

    @property
    def stats(self) -> ErrorBudgetStats:
        total, bad, _ = self._whole.totals(read_now(self._clock, None))
        remaining = self._left(total, bad)
        return ErrorBudgetStats(
            name=self._name,
            slo=self._slo,
            window=self._window,
            total=total,
            bad=bad,
            remaining=remaining,
            exhausted=remaining <= 0.0,
        )

    def __sizeof__(self) -> int:
        rings = self._fine.__sizeof__()
        if self._coarse is not None:
            rings += self._coarse.__sizeof__()
        return object.__sizeof__(self) + rings

    def __repr__(self) -> str:
        return f"<ErrorBudget name={self._name!r} slo={self._slo!r} remaining={self.remaining:.4f}>"


def firing(rules: Iterable[AlertRule], rates: Mapping[float, float]) -> list[BurnAlert]:
    """The rules whose long and short windows both burn at or above their rate.

    ``rates`` maps each window (seconds) to its burn rate, measured at one moment.
    """
    return [
        BurnAlert(
            **asdict(rule),
            long_burn_rate=rates[rule.long_window],
            short_burn_rate=rates[rule.short_window],
        )
        for rule in rules
        if min(rates[rule.long_window], rates[rule.short_window]) >= rule.burn_rate
    ]


def check_rules(rules: Iterable[AlertRule]) -> tuple[AlertRule, ...]:
    """Alert rules, each an ``AlertRule``."""
    if not isinstance(rules, Iterable):
        raise TypeError(f"rules must be an iterable of AlertRule, got {rules!r}")
    result = tuple(rules)
    for rule in result:
        if not isinstance(rule, AlertRule):
            raise TypeError(f"rules must hold AlertRule records, got {rule!r}")
        positive("long_window", rule.long_window)
        positive("short_window", rule.short_window)
        positive("burn_rate", rule.burn_rate)
    return result


@dataclass(frozen=True)
class LatencyBudgetStats:
    """A snapshot of a latency budget (``observed`` is None before any record)."""

    name: str | None
    threshold: float
    target_quantile: float
    observed: float | None
    count: int
    exhausted: bool


class LatencyBudget(NoCopy):
    """A latency objective: the ``quantile`` of recorded latencies stays <= ``threshold``.

    Latencies go into a ``LatencySketch`` whose quantiles are within
    ``relative_error`` of the exact ones (the sorted sample at 0-based rank
    ``floor(q * (n - 1))``). With ``window`` seconds, a ``LatencyWindow``
    keeps ``buckets`` time slices and a query merges the slices of the last
    ``window`` seconds (whole slices, the current one included); memory is
    ``buckets`` sketches of about 13.6 KiB each at 1% (and one more,
    briefly, per query), 8 MiB at most, and a slice is at least a
    microsecond wide.
    """

    def __init__(
        self,
        threshold: float,
        *,
        quantile: float = 0.99,
        relative_error: float = 0.01,
        window: float | None = None,
        buckets: int = 6,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._threshold = positive("threshold", threshold)
        self._target = check_quantile("quantile", quantile)
        self._window = None if window is None else positive("window", window)
        slices = count("buckets", buckets)
        if self._window is None:
            slices = 1  # all time: one sketch
        else:
            slice_width("window", self._window, slices, "buckets")
        self._name = check_name(name)
        clock = check_clock(clock)  # the window reads it; checked without one too
        # All time: one sketch; a window: the compiled window of sketches.
        self._sketch: _core.LatencySketch | None = None
        self._slices: _core.LatencyWindow | None = None
        if self._window is None:
            self._sketch = _core.SELECTED.LatencySketch(relative_error)
            self._record = self._sketch.add
            self._relative_error = self._sketch.relative_error
        else:
            self._slices = _core.SELECTED.LatencyWindow(
                self._window, slices, relative_error, clock=clock
            )
            self._record = self._slices.add
            self._relative_error = self._slices.relative_error

    def record(self, seconds: float) -> None:
        """Count one latency, in seconds (>= 0, finite)."""
        self._record(seconds)

    def _current(self) -> _core.LatencySketch:
        """One sketch of everything in the window."""
        if self._sketch is not None:
            return self._sketch
        assert self._slices is not None
        return self._slices.sketch()

    def quantile(self, q: float) -> float:
        """The latency at quantile ``q`` of what was recorded (NaN before any record)."""
        return float(self._current().quantile(q))

    @property
    def exhausted(self) -> bool:
        """True while the target quantile is above the threshold."""
        return bool(self._current().quantile(self._target) > self._threshold)

    @property
    def count(self) -> int:
        """How many latencies are in the window."""
        if self._slices is not None:
            return self._slices.count()
        assert self._sketch is not None
        return self._sketch.count

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def target_quantile(self) -> float:
        return self._target

    @property
    def relative_error(self) -> float:
        return self._relative_error

    @property
    def window(self) -> float | None:
        return self._window

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def stats(self) -> LatencyBudgetStats:
        sketch = self._current()
        observed = sketch.quantile(self._target)
        return LatencyBudgetStats(
            name=self._name,
            threshold=self._threshold,
            target_quantile=self._target,
            observed=None if math.isnan(observed) else observed,
            count=sketch.count,
            exhausted=observed > self._threshold,
        )

    def __repr__(self) -> str:
        return (
            f"<LatencyBudget name={self._name!r} threshold={self._threshold!r}"
            f" quantile={self._target!r}>"
        )

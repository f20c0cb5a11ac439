"""``python -m resilience demo``: a flaky downstream, called through a pipeline, watched live.

About twenty seconds of asyncio traffic, a few hundred requests a second in
flight at once, against a simulated downstream that is healthy, degrades,
fails almost completely (while callers push harder), recovers and is healthy
again — its errors and latency injected by seeded ``Chaos``. Each request
goes through ``Pipeline(limiter, retry, breaker, bulkhead)``. An error
budget with alert windows scaled down to the demo, a latency budget, a
health check that isolates the breaker while the downstream is down, and a
degradation manager watch. A legend of the columns, one line of the live
view a second (of demo time), then a summary. ``--scale`` stretches or
shrinks the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from .. import backoff, chaos
from ..breaker import CircuitBreaker
from ..budget import AlertRule, ErrorBudget, LatencyBudget
from ..bulkhead import Bulkhead
from ..chaos import Chaos
from ..degradation import DegradationManager
from ..errors import BulkheadFullError, CircuitOpenError, InjectedFault, RateLimitExceeded
from ..health import HealthCheck, HealthChecker
from ..pipeline import Pipeline
from ..ratelimit import RateLimiter
from ..retry import Retry


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    arrivals: float  # requests a second
    error_rate: float
    latency: float  # seconds, before jitter
    jitter: float


PHASES = (
    Phase("healthy", 4.0, 150.0, 0.01, 0.010, 0.005),
    Phase("degrading", 4.0, 150.0, 0.20, 0.060, 0.040),
    Phase("outage", 4.0, 250.0, 0.95, 0.250, 0.100),
    Phase("recovering", 3.0, 150.0, 0.05, 0.030, 0.010),
    Phase("healthy", 5.0, 150.0, 0.01, 0.010, 0.005),
)

# The objectives the budgets watch (and the legend quotes).
SLO = 0.9  # of the requests ok
SLO_WINDOW = 60.0  # seconds
P99_THRESHOLD = 0.2  # seconds
P99_WINDOW = 3.0  # seconds

# Multiwindow burn-rate rules in the SRE workbook's shape, shrunk to fit a
# 20-second run; a 90% SLO cannot burn faster than 10.
DEMO_RULES = (
    AlertRule("page", 5.0, 1.0, 5.0),
    AlertRule("ticket", 20.0, 5.0, 2.0),
)

# How a request can end other than ok: its label -> (the error that ends it,
# what the label means). The summary counts each request under one label.
NOT_OK: dict[str, tuple[type[Exception], str]] = {
    "circuit open": (CircuitOpenError, "refused by the breaker"),
    "rate limited": (RateLimitExceeded, "refused by the rate limiter"),
    "bulkhead full": (BulkheadFullError, "refused by the bulkhead"),
    "failed": (InjectedFault, "the downstream's error, after the retries"),
}
NOT_OK_ERRORS = tuple(error for error, _ in NOT_OK.values())


@dataclass(frozen=True)
class Column:
    """A column of the live view: its title, its width, and what it shows."""

    title: str
    width: int
    meaning: str
    numeric: bool = True  # numbers align right, words left


COLUMNS = (
    Column("time", 6, "seconds since the start"),
    Column("phase", 10, "what the simulated downstream is doing", numeric=False),
    Column("ok%", 5, "of all the requests finished so far, the share that ended ok"),
    Column("breaker", 11, "the circuit breaker's state", numeric=False),
    Column("active/queued", 13, "calls inside the bulkhead / waiting to enter it, now"),
    Column("retries", 7, "retries so far (attempts after a request's first)"),
    Column("limited", 7, "requests the rate limiter refused so far"),
    Column(
        "budget",
        6,
        f"error budget left (SLO {SLO:.0%} ok over {SLO_WINDOW:.0f} s); below 0% overspent",
    ),
    Column(
        "burn 1s",
        7,
        f"burn rate of the last second: at 1.0 the budget lasts {SLO_WINDOW:.0f} s;"
        f" {1 / (1 - SLO):.0f}: nothing ok",
    ),
    Column("p99", 6, f"99th-percentile latency over the last {P99_WINDOW:.0f} s"),
    Column("health", 8, "the health check's status; DOWN forces the breaker open", numeric=False),
    Column("level", 8, "the degradation level", numeric=False),
)


def row(cells: Sequence[str]) -> str:
    """A line of the live view: each cell padded to its column's width."""
    return "  ".join(
        cell.rjust(column.width) if column.numeric else cell.ljust(column.width)
        for column, cell in zip(COLUMNS, cells, strict=True)
    ).rstrip()


class Demo:
    """The simulated service and everything that protects and watches it."""

    def __init__(self, out: TextIO, scale: float) -> None:
        self.out = out
        self.scale = scale
        self.phase = PHASES[0]
        self.faults = {
            phase: Chaos(
                chaos.latency(phase.latency, jitter=phase.jitter),
                chaos.error(InjectedFault, rate=phase.error_rate),
                enabled=True,
                seed=index,
            )
            for index, phase in enumerate(PHASES)
        }
        self.breaker = CircuitBreaker(
            "downstream",
            failure_threshold=0,
            failure_rate=0.5,
            window=50,
            minimum_calls=20,
            reset_timeout=1.0,
            reset_timeout_max=4.0,
            half_open_calls=3,
        )
        self.limiter = RateLimiter(200, per=1.0, name="callers")
        self.bulkhead = Bulkhead(24, max_queue=24, max_wait=0.1, name="downstream")
        self.retry = Retry(
            3,
            backoff=backoff.exponential(initial=0.02, max=0.2),
            on=InjectedFault,
            name="downstream",
        )
        self.pipeline = Pipeline(self.limiter, self.retry, self.breaker, self.bulkhead)
        self.errors = ErrorBudget(SLO, window=SLO_WINDOW, rules=DEMO_RULES, name="availability")
        self.latency = LatencyBudget(
            P99_THRESHOLD, quantile=0.99, window=P99_WINDOW, name="p99"
        )
        self.check = HealthCheck(
            "downstream",
            self.ping,
            interval=0.5,
            timeout=0.3,
            failure_threshold=2,
            isolate=self.breaker,
        )
        self.health = HealthChecker([self.check])
        self.degradation = DegradationManager(recovery=2.0, check_interval=0.1)
        self.degradation.trigger_when(lambda: self.breaker.state.value != "CLOSED", "degraded")
        self.degradation.trigger_when(
            lambda: any(a.severity == "page" for a in self.errors.alerts()), "critical"
        )
        self.outcomes = dict.fromkeys(["ok", *NOT_OK], 0)
        self.changes: list[str] = []
        self.started = time.monotonic()
        self.breaker.on_state_change(
            lambda _, old, new: self.note(f"breaker {old.value} -> {new.value}")
        )
        self.health.on_change(
            lambda name, old, new: self.note(f"health {old.value} -> {new.value}")
        )
        self.degradation.on_change(lambda old, new: self.note(f"level {old} -> {new}"))

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, change: str) -> None:
        self.changes.append(f"{self.now():5.1f}s {change}")

    async def downstream(self) -> str:
        return await self.faults[self.phase].acall(asyncio.sleep, 0, "ok")

    async def ping(self) -> bool:
        try:
            await self.downstream()
        except InjectedFault:
            return False
        return True

    async def request(self) -> None:
        start = time.monotonic()
        try:
            await self.pipeline.acall(self.downstream)
        except NOT_OK_ERRORS as exc:
            outcome = next(label for label, (error, _) in NOT_OK.items() if isinstance(exc, error))
        else:
            outcome = "ok"
        self.outcomes[outcome] += 1
        self.errors.record(outcome == "ok")
        if outcome in ("ok", "failed"):
            self.latency.record(time.monotonic() - start)

    async def run(self) -> None:
        self.legend()
        view = asyncio.create_task(self.live_view())
        await self.health.astart()
        requests: set[asyncio.Task[None]] = set()
        try:
            start = time.monotonic()
            for phase in PHASES:
                self.phase = phase
                for i in range(round(phase.seconds * self.scale * phase.arrivals)):
                    due = start + i / (phase.arrivals)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if view.done():  # the live view failed (stdout closed): stop with its error
                        view.result()
                    task = asyncio.create_task(self.request())
                    requests.add(task)
                    task.add_done_callback(requests.discard)
                start += phase.seconds * self.scale
            await asyncio.gather(*requests)
        finally:
            await self.health.astop()
            view.cancel()
            for task in requests:
                task.cancel()
        self.line()
        self.summary()

    async def live_view(self) -> None:
        while True:
            await asyncio.sleep(self.scale)
            self.line()

    def legend(self) -> None:
        """What each column shows, then the header of the live view."""
        width = max(len(column.title) for column in COLUMNS)
        print(
            f"One line every {self.scale:g} s, changes noted beneath it. The columns:",
            file=self.out,
        )
        for column in COLUMNS:
            print(f"  {column.title:<{width}}  {column.meaning}", file=self.out)
        print(file=self.out)
        print(row([column.title for column in COLUMNS]), file=self.out)

    def line(self) -> None:
        self.degradation.evaluate()
        done = sum(self.outcomes.values())
        ok = 100.0 * self.outcomes["ok"] / done if done else 100.0
        bulkhead = self.bulkhead.stats
        cells = [
            f"{self.now():.1f}s",
            self.phase.name,
            f"{ok:.1f}",
            self.breaker.state.value,
            f"{bulkhead.active:>6}/{bulkhead.waiting:<6}",
            str(self.retry.stats.retries),
            str(self.limiter.stats.rejected),
            f"{100 * self.errors.remaining:.0f}%",
            f"{self.errors.burn_rate(1.0):.1f}",
            milliseconds(self.latency.quantile(0.99)),
            self.check.status.value,
            self.degradation.level,
        ]
        print(row(cells), file=self.out)
        for change in self.changes:
            print(f"        {change}", file=self.out)
        self.changes.clear()
        self.out.flush()

    def summary(self) -> None:
        out = self.out
        total = sum(self.outcomes.values())
        ok = self.outcomes["ok"]

        def share(n: int) -> str:
            return f"({100 * n / max(total, 1):.1f}%)"

        print("\nsummary", file=out)
        # Every request is counted once: ok, or not ok under how it ended.
        print(f"  requests        {total}", file=out)
        print(f"    ok              {ok:>6}  {share(ok)}", file=out)
        print(f"    not ok          {total - ok:>6}  {share(total - ok)}", file=out)
        for label, (_, meaning) in NOT_OK.items():
            n = self.outcomes[label]
            print(f"      {label:<13} {n:>6}  {share(n):<8}  {meaning}", file=out)
        b = self.breaker.stats
        moves = ", ".join(
            f"{old.value}->{new.value} x{n}" for (old, new), n in self.breaker.transitions.items()
        )
        print(f"  breaker         {b.state.value}; {b.rejected} calls refused; {moves}", file=out)
        print(f"  bulkhead        {self.bulkhead.stats.rejected} calls refused", file=out)
        r = self.retry.stats
        print(f"  retry           {r.attempts} attempts, {r.retries} of them retries", file=out)
        injected = sum(fault.stats.error for fault in self.faults.values())
        print(
            f"  chaos           {injected} errors injected (into attempts and health pings)",
            file=out,
        )
        e = self.errors.stats
        print(
            f"  error budget    {100 * e.remaining:.0f}% left: {e.bad} not ok of {e.total}"
            f" requests (SLO {e.slo:.0%} ok over {e.window:.0f} s)",
            file=out,
        )
        print(
            f"  latency budget  p99 {milliseconds(self.latency.quantile(0.99))} over the last"
            f" {self.latency.window:.0f} s (threshold {milliseconds(self.latency.threshold)})",
            file=out,
        )
        print(
            f"  health          {self.check.status.value}; level {self.degradation.level}", file=out
        )


def milliseconds(seconds: float) -> str:
    """``0.0123`` -> ``"12ms"``; NaN (no latency in the window) -> ``"-"``."""
    return f"{1000 * seconds:.0f}ms" if seconds == seconds else "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="stretch (>1) or shrink (<1) the run; 1 takes about 20 seconds",
    )
    parser.add_argument(
        "--redis",
        nargs="?",
        const="",
        metavar="URL",
        help="instead: worker processes sharing one limit and one breaker in Redis (the URL,"
        " or a throwaway local redis-server when none is given)",
    )


def command(args: argparse.Namespace) -> int:
    if not 0.05 <= args.scale <= 100:
        raise SystemExit(f"--scale must be in [0.05, 100], got {args.scale!r}")
    if args.redis is not None:
        from . import fleetdemo

        return fleetdemo.run(args.redis or None, args.scale)
    asyncio.run(Demo(sys.stdout, args.scale).run())
    return 0

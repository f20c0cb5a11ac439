"""``python -m resilience demo --redis [URL]``: worker processes sharing one limit and one breaker.

Four worker processes (spawned) call one downstream through a
``RedisRateLimiter`` and a ``RedisCircuitBreaker`` kept in Redis — the URL
given, or a throwaway local redis-server when ``redis-server`` is
installed. The downstream is healthy, then fails for one process only (that
process's own breaker opens; the fleet's stays closed, short of its quorum
of two), then fails for every process (the fleet opens and every process
refuses at once, whatever its own breaker had seen), then recovers (one
process probes, the fleet closes). Each worker reports twice a second; a
line of the live view per round of reports, then a summary that checks the
shared limit: the fleet admitted no more than ``rate x T + burst`` in the T
seconds it ran.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import TextIO

RATE = 40.0  # calls a second, for the whole fleet
BURST = 10
REPORT_EVERY = 0.5  # seconds (of the run's scale)
WORKERS = 4
# (name, seconds at scale 1, the workers whose downstream fails)
PHASES = (
    ("healthy", 3.0, ()),
    ("one bad node", 3.0, (0,)),
    ("outage", 4.0, tuple(range(WORKERS))),
    ("recovered", 4.0, ()),
)
LEGEND = (
    "t: seconds; phase; admitted/s: calls the shared limiter let through, the fleet's\n"
    f"total (its limit: {RATE:g}/s); then each worker's breaker as local/fleet state\n"
    "(C closed, O open, H half-open)."
)


@dataclass(frozen=True)
class Report:
    """What one worker saw since its last report."""

    worker: int
    at: float  # seconds since the start
    admitted: int
    local: str
    fleet: str


def phase_at(elapsed: float, scale: float) -> tuple[str, tuple[int, ...]]:
    """The phase running ``elapsed`` seconds into a run of this scale."""
    end = 0.0
    for name, seconds, failing in PHASES:
        end += seconds * scale
        if elapsed < end:
            return name, failing
    return PHASES[-1][0], PHASES[-1][2]


def duration(scale: float) -> float:
    return sum(seconds for _, seconds, _ in PHASES) * scale


def worker(
    url: str, index: int, scale: float, go: Event, reports: Queue[Report | str]
) -> None:
    """In a spawned process: call the downstream through the shared policies."""
    try:
        _work(url, index, scale, go, reports)
    except BaseException as exc:  # told to the parent, which ends the demo
        reports.put(f"worker {index}: {type(exc).__name__}: {exc}")
        raise


def _work(url: str, index: int, scale: float, go: Event, reports: Queue[Report | str]) -> None:
    from ..errors import CircuitOpenError
    from ..redis import RedisCircuitBreaker, RedisRateLimiter, RedisStore

    class Down(Exception):
        """The downstream failed."""

    def downstream(failing: bool) -> None:
        if failing:
            raise Down

    with RedisStore.from_url(url, timeout=0.5) as store:
        limiter = RedisRateLimiter(store, "demo-api", RATE, per=1.0, burst=BURST)
        breaker = RedisCircuitBreaker(
            store,
            "demo-downstream",
            quorum=2,
            sync_interval=0.1,
            fleet_window=2.0 * scale,
            failure_rate=0.5,
            minimum_calls=8,
            reset_timeout=1.0 * scale,
        )
        go.wait(60.0)
        started = time.monotonic()
        admitted = 0
        next_report = REPORT_EVERY * scale
        while (elapsed := time.monotonic() - started) < duration(scale):
            _, failing = phase_at(elapsed, scale)
            if limiter.try_acquire():
                admitted += 1
                with suppress(Down, CircuitOpenError):
                    breaker.call(downstream, index in failing)
            if elapsed >= next_report:
                reports.put(Report(index, elapsed, admitted, breaker.state.value,
                                   breaker.fleet_state.value))  # fmt: skip
                admitted = 0
                next_report += REPORT_EVERY * scale
            time.sleep(0.002)
        breaker.close()


@contextmanager
def redis_url(given: str | None, out: TextIO) -> Iterator[str]:
    """The URL given, or a throwaway local server's for the demo's length."""
    if given:
        yield given
        return
    from .redisbench import local_server, server_binary

    binary = server_binary()
    if binary is None:
        raise SystemExit(
            "demo --redis needs a Redis: give its URL (--redis redis://host:6379/0) or"
            " install redis-server for a throwaway local one"
        )
    with local_server(binary) as url:
        out.write(f"a throwaway redis-server at {url}\n")
        yield url


def run(given: str | None, scale: float, out: TextIO = sys.stdout) -> int:
    """Run the fleet demo; print the live view and the summary."""
    with redis_url(given, out) as url:
        _flush(url)
        context = multiprocessing.get_context("spawn")
        go = context.Event()
        reports: Queue[Report | str] = context.Queue()
        workers = [
            context.Process(target=worker, args=(url, i, scale, go, reports), daemon=True)
            for i in range(WORKERS)
        ]
        for each in workers:
            each.start()
        out.write(LEGEND + "\n")
        out.write(f"{'t':>5}  {'phase':<14} {'admitted/s':>10}  "
                  + "  ".join(f"w{i}" for i in range(WORKERS)) + "\n")  # fmt: skip
        time.sleep(0.5)  # the spawned interpreters import the library meanwhile
        go.set()
        started = time.monotonic()
        totals = interval = 0
        opened = False
        states = ["C/C"] * WORKERS
        try:
            deadline = started + duration(scale) + 60.0
            while any(each.is_alive() for each in workers) and time.monotonic() < deadline:
                try:
                    report = reports.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(report, str):
                    raise SystemExit(f"the demo failed: {report}")
                totals += report.admitted
                interval += report.admitted
                states[report.worker] = f"{report.local[0]}/{report.fleet[0]}"
                opened = opened or report.fleet == "OPEN"
                if report.worker == WORKERS - 1:  # one line per round of reports
                    name, _ = phase_at(report.at, scale)
                    per_second = interval / (REPORT_EVERY * scale)
                    out.write(f"{report.at / scale:5.1f}  {name:<14} {per_second:10.0f}  "
                              + "  ".join(f"{s:<3}" for s in states) + "\n")  # fmt: skip
                    interval = 0
        finally:
            for each in workers:
                each.join(timeout=10.0)
                if each.is_alive():
                    each.kill()
        seconds = duration(scale)
        limit = RATE * seconds + BURST
        out.write(
            f"summary: the fleet admitted {totals} calls in {seconds:.1f} s; the shared limit"
            f" allows at most {limit:.0f} ({RATE:g}/s x {seconds:.1f} s + burst {BURST});"
            f" {'within it' if totals <= limit else 'OVER IT'}."
            f" The fleet's breaker {'opened in the outage' if opened else 'never opened'}.\n"
        )
        return 0 if totals <= limit and opened else 1


def _flush(url: str) -> None:
    """Start from nothing: the demo's keys of an earlier run are dropped."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2.0)
    try:
        for name in client.scan_iter(match="*demo-*"):
            client.delete(name)
    finally:
        client.close()

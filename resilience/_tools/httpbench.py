"""The HTTP client rows of ``python -m resilience bench``: ``ResilientTransport``'s cost,
against httpx-retries' and against the same run's loopback request.

In-process rows, microseconds per request: ``transport.handle_request(request)``
of one GET over ``httpx.MockTransport`` answering 200 at once, bare, inside
``ResilientTransport`` with retry only, inside ``ResilientTransport`` with
retry, a breaker and a limiter, and inside httpx-retries'
``RetryTransport`` (retry only, its defaults). The loopback row: an
``httpx.Client`` GET, kept alive, against uvicorn serving a bare ASGI app
on 127.0.0.1, in the same rounds. A transport's cost is the median of
per-round differences with the bare MockTransport; the targets are
``ResilientTransport`` with retry only <= ``LOOPBACK_SHARE`` of the
loopback request, and below httpx-retries' cost.

httpx and uvicorn come with the test extra, httpx-retries with
``benchmarks/requirements.txt``; without them the rows say so and are
skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import timing
from .asgibench import LOOPBACK_SHARE, _served, bare_app, missing

BARE = "httpx.MockTransport (bare)"
RETRY = "ResilientTransport, retry only"
GUARDED = "ResilientTransport, retry + breaker + limiter"
PEER = "httpx-retries RetryTransport"
LOOPBACK = "loopback GET (httpx -> uvicorn, bare app)"
HUGE = 10**9  # requests a second: every one allowed


def _transports() -> dict[str, Any]:
    import httpx

    from ..breaker import CircuitBreaker
    from ..http.httpx import ResilientTransport
    from ..ratelimit import RateLimiter

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    def mock() -> httpx.MockTransport:
        return httpx.MockTransport(answer)

    transports: dict[str, Any] = {
        BARE: mock(),
        RETRY: ResilientTransport(mock()),
        GUARDED: ResilientTransport(
            mock(),
            breaker=CircuitBreaker("bench", failure_rate=0.5, minimum_calls=20),
            limiter=RateLimiter(HUGE),
        ),
    }
    if not missing(("httpx_retries",)):
        from httpx_retries import RetryTransport

        transports[PEER] = RetryTransport(transport=mock())
    return transports


def run(
    repeat: int = 7, target: float = 0.1, out: Callable[[str], object] = print
) -> dict[str, Any]:
    """Print the HTTP client rows and return their figures (us per request)."""
    absent = missing(("httpx", "uvicorn"))
    if absent:
        out(f"HTTP client rows skipped: {', '.join(absent)} not installed")
        return {"skipped": absent}
    import httpx

    transports = _transports()
    if PEER not in transports:
        out("  httpx-retries row skipped: not installed (benchmarks/requirements.txt)")
    request = httpx.Request("GET", "http://bench.invalid/")
    for name, transport in transports.items():
        if transport.handle_request(request).status_code != 200:
            raise RuntimeError(f"{name} did not answer 200")
    loops = {
        name: timing.loop(
            "transport.handle_request(request)",
            {"transport": transport, "request": request},
            target,
        )
        for name, transport in transports.items()
    }
    with _served(bare_app) as url, httpx.Client() as client:
        loops[LOOPBACK] = timing.loop("client.get(url)", {"client": client, "url": url}, target)
        samples = timing.interleaved(loops, repeat)
    us = {name: figure / 1000 for name, figure in timing.medians(samples).items()}
    out("HTTP client rows: in-process over httpx.MockTransport, us per request; loopback in the"
        " same rounds")  # fmt: skip
    for name, figure in us.items():
        out(f"  {name:<46}{figure:>9.2f} us")
    ours = timing.difference(samples[RETRY], samples[BARE]) / 1000
    guarded = timing.difference(samples[GUARDED], samples[BARE]) / 1000
    share = ours / us[LOOPBACK]
    out(
        f"  ResilientTransport (retry only) over the bare transport: {ours:.2f} us = {share:.2%}"
        f" of the loopback request (target <= {LOOPBACK_SHARE:.0%})"
        f" {'met' if share <= LOOPBACK_SHARE else 'MISSED'}; with a breaker and a limiter"
        f" {guarded:.2f} us"
    )
    results: dict[str, Any] = {
        "us": us,
        "retry_overhead_us": ours,
        "retry_overhead_share_of_loopback": share,
        "guarded_overhead_us": guarded,
    }
    if PEER in transports:
        peer = timing.difference(samples[PEER], samples[BARE]) / 1000
        results["httpx_retries_overhead_us"] = peer
        out(
            f"  retry only: ours {ours:.2f} us, httpx-retries' {peer:.2f} us (target: below"
            f" httpx-retries') {'met' if ours < peer else 'MISSED'}"
        )
    return results

"""The ASGI rows of ``python -m resilience bench``: ``RateLimitMiddleware``'s cost, against
slowapi's and against the same run's loopback request.

In-process rows, microseconds per request: ``await app(scope, receive,
send)`` on one event loop with a fresh copy of one GET scope and a
``send`` that drops the messages, for a bare ASGI app, the bare app inside
``RateLimitMiddleware`` (``headers="ietf"`` and ``None``), a Starlette app,
the Starlette app inside ``RateLimitMiddleware`` and inside slowapi's
``SlowAPIASGIMiddleware`` (``default_limits`` with and without its
headers: its closest form). Every limit is high enough that every request
is allowed (checked first, with a limit of one, that each really refuses
the second request). The loopback row: an ``httpx.Client`` GET, kept
alive, against uvicorn serving the bare app on 127.0.0.1, in the same
rounds. A middleware's cost is the median of per-round differences with
its app alone; the targets are ``RateLimitMiddleware`` on the bare app
<= ``LOOPBACK_SHARE`` of the loopback request, and below slowapi's cost on
the same Starlette app.

Starlette, uvicorn and httpx come with the test extra, slowapi with
``benchmarks/requirements.txt``; without them the rows say so and are
skipped.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..http.asgi import RateLimitMiddleware
from ..ratelimit import KeyedRateLimiter
from . import timing

LOOPBACK_SHARE = 0.03  # the middleware's cost, at most, as a share of a loopback request
HUGE = 10**9  # requests per minute: every one allowed
READY_SECONDS = 10.0

# The rows the targets compare.
BARE = "bare ASGI app"
BARE_IETF = "bare + RateLimitMiddleware (ietf headers)"
STARLETTE = "Starlette app"
STARLETTE_IETF = "Starlette + RateLimitMiddleware (ietf headers)"
STARLETTE_SLOWAPI = "Starlette + slowapi (headers)"
LOOPBACK = "loopback GET (httpx -> uvicorn, bare app)"

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def dropped(message: Any) -> None:
    """The ``send`` of the in-process rows: the response goes nowhere."""


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    """The smallest honest ASGI app: one plain answer."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _limited(app: Any, headers: str | None, rate: int = HUGE) -> Any:
    return RateLimitMiddleware(app, limiter=KeyedRateLimiter(rate, per=60), headers=headers)


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: Any) -> Any:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", ok)])


def _slowapi(headers: bool, limit: str = f"{HUGE}/minute") -> Any:
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app = _starlette()
    app.state.limiter = Limiter(
        key_func=get_remote_address, default_limits=[limit], headers_enabled=headers
    )
    app.add_middleware(SlowAPIASGIMiddleware)
    return app


def _ours_on_starlette() -> Any:
    app = _starlette()
    app.add_middleware(RateLimitMiddleware, limiter=KeyedRateLimiter(HUGE, per=60))
    return app


def _statuses(app: Any, requests: int) -> list[int]:
    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def ask() -> None:
        for _ in range(requests):
            await app(dict(SCOPE), receive, send)

    timing.run(ask())
    return statuses


@contextmanager
def _served(app: Any) -> Iterator[str]:
    """uvicorn serving ``app`` on a free 127.0.0.1 port, in a thread, for the block (off the
    main thread uvicorn installs no signal handlers)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    try:
        limit = time.monotonic() + READY_SECONDS
        while not (server.started and server.servers):
            if not thread.is_alive() or time.monotonic() > limit:
                raise RuntimeError(f"uvicorn did not start within {READY_SECONDS:g} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(READY_SECONDS)


def missing(needed: tuple[str, ...] = ("starlette", "uvicorn", "httpx")) -> list[str]:
    """The modules of ``needed`` that are not installed."""
    return [name for name in needed if importlib.util.find_spec(name) is None]


def run(
    repeat: int = 7, target: float = 0.1, out: Callable[[str], object] = print
) -> dict[str, Any]:
    """Print the ASGI rows and return their figures (us per request)."""
    absent = missing()
    if absent:  # the rows need a server, a client and an app framework
        out(f"ASGI rows skipped: {', '.join(absent)} not installed")
        return {"skipped": absent}
    import httpx

    with_slowapi = not missing(("slowapi",))
    if not with_slowapi:
        out("  slowapi rows skipped: slowapi not installed (benchmarks/requirements.txt)")
    # Each limiter refuses when it must: a limit of one, the second request 429.
    limited = [_limited(bare_app, "ietf", rate=1)]
    if with_slowapi:
        limited.append(_slowapi(True, "1/minute"))
    for app in limited:
        statuses = _statuses(app, 2)
        if statuses != [200, 429]:
            raise RuntimeError(f"{app!r} did not limit: {statuses}")
    apps = {
        BARE: bare_app,
        BARE_IETF: _limited(bare_app, "ietf"),
        "bare + RateLimitMiddleware (no headers)": _limited(bare_app, None),
        STARLETTE: _starlette(),
        STARLETTE_IETF: _ours_on_starlette(),
    }
    if with_slowapi:
        apps[STARLETTE_SLOWAPI] = _slowapi(True)
        apps["Starlette + slowapi (no headers)"] = _slowapi(False)
    for name, app in apps.items():
        if _statuses(app, 3) != [200] * 3:
            raise RuntimeError(f"{name} refused a request of the bench")
    stmt = "await app(dict(scope), receive, send)"
    loops = {
        name: timing.loop(
            stmt, {"app": app, "scope": SCOPE, "receive": receive, "send": dropped}, target, True
        )
        for name, app in apps.items()
    }
    with _served(bare_app) as url, httpx.Client() as client:
        loops[LOOPBACK] = timing.loop("client.get(url)", {"client": client, "url": url}, target)
        samples = timing.interleaved(loops, repeat)
    us = {name: figure / 1000 for name, figure in timing.medians(samples).items()}
    out("ASGI rows: in-process, us per request (a fresh scope each); loopback in the same rounds")
    for name, figure in us.items():
        out(f"  {name:<46}{figure:>9.2f} us")
    ours = timing.difference(samples[BARE_IETF], samples[BARE]) / 1000
    ours_starlette = timing.difference(samples[STARLETTE_IETF], samples[STARLETTE]) / 1000
    share = ours / us[LOOPBACK]
    out(
        f"  RateLimitMiddleware (ietf) over the bare app: {ours:.2f} us = {share:.2%} of the"
        f" loopback request (target <= {LOOPBACK_SHARE:.0%})"
        f" {'met' if share <= LOOPBACK_SHARE else 'MISSED'}"
    )
    results = {
        "us": us,
        "overhead_us": ours,
        "overhead_share_of_loopback": share,
        "overhead_on_starlette_us": ours_starlette,
    }
    if with_slowapi:
        slowapi = timing.difference(samples[STARLETTE_SLOWAPI], samples[STARLETTE]) / 1000
        results["slowapi_overhead_us"] = slowapi
        out(
            f"  over the Starlette app, with headers: ours {ours_starlette:.2f} us, slowapi's"
            f" {slowapi:.2f} us (target: below slowapi's)"
            f" {'met' if ours_starlette < slowapi else 'MISSED'}"
        )
    return results

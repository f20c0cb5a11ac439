"""resilience.http.asgi through real HTTP: uvicorn on loopback, real httpx clients.

Each middleware is added to a Starlette app, a FastAPI app or a bare ASGI
app, served by ``http_server.serve`` (uvicorn in a thread), and met by
``httpx.Client`` / ``httpx.AsyncClient``. The figures in the headers are
checked against a twin limiter driven in lockstep on the same fake clock,
not against numbers written here. Only ``test_redis_limiter_*`` needs a Redis
server; the outage tests point a store at a port nothing listens on.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from http_server import serve
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    DegradationManager,
    KeyedRateLimiter,
    RateLimiter,
    RateLimitExceeded,
    current_criticality,
    remaining,
)
from resilience.http.asgi import (
    QUOTA_EXCEEDED,
    CircuitBreakerMiddleware,
    ConcurrencyLimitMiddleware,
    DeadlineMiddleware,
    LoadSheddingMiddleware,
    RateLimitMiddleware,
    ServerErrorStatus,
    client_ip,
    client_ip_behind,
)
from resilience.redis import RedisRateLimiter, RedisStore
from resilience.testing import FakeClock

TIMEOUT = 10.0  # bounds a failure: every request here answers in milliseconds
SETTLE = 5.0  # how long a server-side release may take to be seen, at most


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition()``: the server settles a permit after the client has its bytes."""
    limit = time.monotonic() + SETTLE
    while not condition():
        assert time.monotonic() < limit, f"never happened: {what}"
        time.sleep(0.01)


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/", ok), Route("/healthz", ok)])


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"answer": "ok"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"answer": "ok"}

    return app


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app with no framework: one plain answer."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"bare"})


# -- rate limits ---------------------------------------------------------------------------


def parse_item(value: str) -> tuple[str, dict[str, int]]:
    """A structured-field item ``"name";a=1;b=2``: the name and the integer parameters."""
    match = re.fullmatch(r'"((?:[^"\\]|\\.)*)"((?:;[a-z]+=\d+)*)', value)
    assert match, f"not an item of a String and Integer parameters: {value!r}"
    params = dict(p.split("=") for p in match.group(2).split(";")[1:])
    return match.group(1), {k: int(v) for k, v in params.items()}


def expected_ietf(twin: Any, name: str, key: str) -> tuple[dict[str, int], dict[str, int]]:
    """What the middleware must say for the next request: the twin's own decision."""
    made = twin.decide(key)
    stats = twin.stats
    policy = {"q": math.floor(stats.rate), "w": int(stats.per)}
    t = math.ceil(made.reset_after if made.allowed else made.retry_after)
    return policy, {"r": made.remaining, "t": t}


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_ietf_headers_then_429_with_retry_after_and_problem(make_app: Callable[[], Any]) -> None:
    clock = FakeClock()
    limiter = KeyedRateLimiter("3/minute", name="api", clock=clock)
    twin = KeyedRateLimiter("3/minute", name="api", clock=clock)
    app = make_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, headers="ietf")
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        for step in range(5):
            response = client.get("/")
            policy, fields = expected_ietf(twin, "api", "127.0.0.1")
            assert parse_item(response.headers["ratelimit-policy"]) == ("api", policy)
            assert parse_item(response.headers["ratelimit"]) == ("api", fields)
            if step < 3:
                assert response.status_code == 200
                assert "retry-after" not in response.headers
            else:
                assert response.status_code == 429
                assert int(response.headers["retry-after"]) == fields["t"] > 0
                assert response.headers["content-type"] == "application/problem+json"
                problem = response.json()
                assert problem["type"] == QUOTA_EXCEEDED
                assert problem["status"] == 429
            clock.advance(2.5)  # an eighth of a token: t moves, the 429s stay
    assert limiter.stats.allowed == 3 and limiter.stats.rejected == 2


def test_legacy_headers_on_a_bare_app() -> None:
    clock = FakeClock()
    limiter = KeyedRateLimiter(2, per=10, clock=clock)
    twin = KeyedRateLimiter(2, per=10, clock=clock)
    app = RateLimitMiddleware(bare_app, limiter=limiter, headers="legacy")
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        for _ in range(3):
            response = client.get("/anything")
            made = twin.decide("127.0.0.1")
            assert response.status_code == (200 if made.allowed else 429)
            assert int(response.headers["x-ratelimit-limit"]) == 2
            assert int(response.headers["x-ratelimit-remaining"]) == made.remaining
            reset = made.reset_after if made.allowed else made.retry_after
            assert int(response.headers["x-ratelimit-reset"]) == math.ceil(reset)
            assert "ratelimit" not in response.headers
    assert response.headers["retry-after"] == response.headers["x-ratelimit-reset"]


def test_no_headers_mode_still_limits() -> None:
    limiter = KeyedRateLimiter(1, per=60)
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, headers=None)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        first, second = client.get("/"), client.get("/")
    assert (first.status_code, second.status_code) == (200, 429)
    for response in (first, second):
        assert not any(name.startswith(("ratelimit", "x-ratelimit")) for name in response.headers)
    assert int(second.headers["retry-after"]) == 60


def test_exempt_paths_are_neither_limited_nor_labelled() -> None:
    limiter = KeyedRateLimiter(1, per=60)
    app = fastapi_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, exempt=("/healthz",))
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert client.get("/").status_code == 200
        for _ in range(3):
            health = client.get("/healthz")
            assert health.status_code == 200
            assert "ratelimit" not in health.headers
        assert client.get("/").status_code == 429
    assert limiter.stats.allowed == 1


def test_more_tokens_than_the_burst_omits_retry_after() -> None:
    limiter = KeyedRateLimiter(2, per=1)
    app = RateLimitMiddleware(bare_app, limiter=limiter, tokens=3)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        response = client.get("/")
    assert response.status_code == 429
    assert "retry-after" not in response.headers  # no wait would ever do
    assert parse_item(response.headers["ratelimit"])[1]["r"] == 2


def test_each_forwarded_client_has_its_own_bucket() -> None:
    limiter = KeyedRateLimiter(1, per=60)
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, key=client_ip_behind(["127.0.0.0/8"]))
    with (
        serve(app, proxy_headers=False) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as client,
    ):
        alice = {"x-forwarded-for": "203.0.113.7"}
        bob = {"x-forwarded-for": "198.51.100.9, 127.0.0.5"}  # through a second local proxy
        assert client.get("/", headers=alice).status_code == 200
        assert client.get("/", headers=bob).status_code == 200
        assert client.get("/", headers=alice).status_code == 429
        assert client.get("/", headers=bob).status_code == 429
        # A spoofed hop left of an untrusted one is not believed: still alice.
        spoof = {"x-forwarded-for": "192.0.2.1, 203.0.113.7"}
        assert client.get("/", headers=spoof).status_code == 429
    assert limiter.stats.keys == 2


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    limiter = KeyedRateLimiter(1, per=60)
    app = RateLimitMiddleware(bare_app, limiter=limiter)  # key=client_ip: the peer
    with (
        serve(app, proxy_headers=False) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as client,
    ):
        first = client.get("/", headers={"x-forwarded-for": "203.0.113.7"})
        second = client.get("/", headers={"x-forwarded-for": "198.51.100.9"})
    assert (first.status_code, second.status_code) == (200, 429)


def scope_from(peer: str | None, forwarded: list[str]) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"type": "http", "client": None if peer is None else (peer, 5000), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("10.0.0.1", ["1.2.3.4"], (), "10.0.0.1"),
        ("10.0.0.1", ["1.2.3.4"], ("10.0.0.0/8",), "1.2.3.4"),
        ("10.0.0.1", ["9.9.9.9, 1.2.3.4, 10.0.0.2"], ("10.0.0.0/8",), "1.2.3.4"),
        ("10.0.0.1", ["9.9.9.9", "1.2.3.4"], ("10.0.0.0/8",), "1.2.3.4"),  # two fields
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], ("10.0.0.0/8",), "10.0.0.3"),  # all proxies
        ("10.0.0.1", ["junk, 10.0.0.2"], ("10.0.0.0/8",), "10.0.0.2"),  # garbage ends it
        ("10.0.0.1", [], ("10.0.0.1",), "10.0.0.1"),
        ("5.6.7.8", ["1.2.3.4"], ("10.0.0.0/8",), "5.6.7.8"),  # an untrusted peer
        ("::1", ["2001:db8::1"], ("::1",), "2001:db8::1"),
        (None, [], (), ""),
    ],
)
def test_client_ip(
    peer: str | None, forwarded: list[str], trusted: tuple[str, ...], expected: str
) -> None:
    scope = scope_from(peer, forwarded)
    assert client_ip(scope, trusted_proxies=trusted) == expected
    assert client_ip_behind(trusted)(scope) == expected


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("on_error", "statuses"),
    [("allow", [200] * 3), ("deny", [429] * 3), ("local", [200, 200, 429])],
)
def test_store_outage_follows_on_error_never_500(on_error: str, statuses: list[int]) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{closed_port()}", on_error=on_error)
    limiter = RedisRateLimiter(store, "outage", 2, per=60)  # "local": its twin, 2 a minute
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            responses = [client.get("/") for _ in range(3)]
    finally:
        store.close()
    assert [r.status_code for r in responses] == statuses
    assert all("ratelimit" in r.headers for r in responses)
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    assert store.stats.fallbacks >= 3


def test_redis_limiter_behind_the_middleware(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=1.0)
    limiter = RedisRateLimiter(store, "edge", 2, per=60)
    app = fastapi_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, headers="ietf")

    async def run(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            return [await client.get("/") for _ in range(3)]

    try:
        with serve(app) as url:
            responses = asyncio.run(run(url))
    finally:
        store.close()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [parse_item(r.headers["ratelimit"])[1]["r"] for r in responses] == [1, 0, 0]
    assert parse_item(responses[0].headers["ratelimit-policy"]) == ("edge", {"q": 2, "w": 60})
    # One token comes back every 30 s: the 429 says about that long.
    assert 28 <= int(responses[2].headers["retry-after"]) <= 30
    assert limiter.stats.allowed == 2 and limiter.stats.rejected == 1


# -- deadlines -------------------------------------------------------------------------------


def deadline_app(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()

    @app.get("/wait")
    async def wait(acquire: bool = False) -> dict[str, Any]:
        left = remaining()
        acquired = None
        if acquire:
            try:
                await limiter.aacquire()
                acquired = True
            except RateLimitExceeded:
                acquired = False
        return {"remaining": None if math.isinf(left) else left, "acquired": acquired}

    app.add_middleware(DeadlineMiddleware)
    return app


def test_request_timeout_header_bounds_a_wait_inside() -> None:
    limiter = RateLimiter(1, per=3600, max_wait=3600.0)  # the next token: an hour away
    assert limiter.try_acquire()
    with serve(deadline_app(limiter)) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as c:
        bounded = c.get("/wait", params={"acquire": "true"}, headers={"request-timeout": "0.5"})
        unbounded = c.get("/wait")
        malformed = [
            c.get("/wait", headers={"request-timeout": value}) for value in ("soon", "-1", "nan")
        ]
    assert bounded.status_code == 200
    answer = bounded.json()
    assert answer["acquired"] is False  # refused within the caller's time, not after an hour
    assert 0.0 < answer["remaining"] <= 0.5
    assert unbounded.json()["remaining"] is None
    assert [r.json()["remaining"] for r in malformed] == [None] * 3


# -- load shedding ---------------------------------------------------------------------------


async def criticality(request: Request) -> Response:
    return PlainTextResponse(current_criticality().name)


def test_load_shedding_by_criticality_header() -> None:
    manager = DegradationManager()
    app = Starlette(routes=[Route("/", criticality)])
    app.add_middleware(LoadSheddingMiddleware, manager=manager)

    def ask(client: httpx.Client, value: str | None) -> httpx.Response:
        headers = {} if value is None else {"x-request-criticality": value}
        return client.get("/", headers=headers)

    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert ask(client, "sheddable").text == "SHEDDABLE"
        manager.set_level("degraded")
        shed = ask(client, "sheddable")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.headers["content-type"] == "application/problem+json"
        assert shed.json()["status"] == 503
        assert ask(client, "Sheddable-Plus").text == "SHEDDABLE_PLUS"
        assert ask(client, None).text == "CRITICAL"
        assert ask(client, "bogus").text == "CRITICAL"
        manager.set_level("critical")
        assert ask(client, "SHEDDABLE_PLUS").status_code == 503
        assert ask(client, "critical").status_code == 200
    assert manager.shed_counts["SHEDDABLE"] == 1
    assert manager.shed_counts["SHEDDABLE_PLUS"] == 1


# -- concurrency limits ----------------------------------------------------------------------


class Gauge:
    """How many requests are inside the slow endpoint now, and at most; a gate to finish."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.open = threading.Event()

    def app(self) -> Starlette:
        async def slow(request: Request) -> Response:
            async def body() -> AsyncIterator[bytes]:
                with self.lock:
                    self.inside += 1
                    self.most = max(self.most, self.inside)
                try:
                    yield b"first\n"
                    while not self.open.is_set():
                        await asyncio.sleep(0.01)
                    yield b"last\n"
                finally:
                    with self.lock:
                        self.inside -= 1

            return StreamingResponse(body(), media_type="text/plain")

        return Starlette(routes=[Route("/slow", slow)])


def test_concurrency_limit_holds_permits_until_responses_complete() -> None:
    gauge = Gauge()
    bulkhead = Bulkhead(2)
    app = gauge.app()
    app.add_middleware(ConcurrencyLimitMiddleware, bulkhead=bulkhead)

    async def one(client: httpx.AsyncClient) -> tuple[int, str, str | None]:
        async with client.stream("GET", "/slow") as response:
            body = (await response.aread()).decode()
            return response.status_code, body, response.headers.get("retry-after")

    async def run(url: str) -> list[tuple[int, str, str | None]]:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            tasks = [asyncio.create_task(one(client)) for _ in range(6)]
            limit = time.monotonic() + SETTLE
            while sum(task.done() for task in tasks) < 4 or gauge.inside < 2:
                assert time.monotonic() < limit, "never two streams in and four refused"
                await asyncio.sleep(0.01)
            # Two streams are open and unfinished: their permits are still held.
            assert gauge.inside == 2 and bulkhead.active == 2
            gauge.open.set()
            return await asyncio.gather(*tasks)

    with serve(app) as url:
        results = asyncio.run(run(url))
        wait_for(lambda: bulkhead.active == 0, "every permit back")
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/slow").status_code == 200
    assert sorted(status for status, _, _ in results) == [200, 200, 503, 503, 503, 503]
    assert {body for status, body, _ in results if status == 200} == {"first\nlast\n"}
    assert {after for status, _, after in results if status == 503} == {"1"}
    assert gauge.most == 2
    assert bulkhead.stats.rejected == 4
    wait_for(lambda: bulkhead.active == 0, "the last permit back")


def test_concurrency_permit_comes_back_when_the_client_leaves_mid_stream() -> None:
    gauge = Gauge()
    bulkhead = Bulkhead(1)
    breaker = CircuitBreaker("app", failure_threshold=1)
    app = gauge.app()
    app.add_middleware(ConcurrencyLimitMiddleware, bulkhead=bulkhead)
    app.add_middleware(CircuitBreakerMiddleware, breaker=breaker)

    async def leave(url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client,
            client.stream("GET", "/slow") as response,
        ):
            async for chunk in response.aiter_bytes():
                assert chunk == b"first\n"
                break
            assert bulkhead.active == 1  # mid-stream: held
        # Leaving the block unread closed the connection: the client is gone.

    with serve(app) as url:
        asyncio.run(leave(url))
        wait_for(lambda: bulkhead.active == 0 and gauge.inside == 0, "the permit back")
        gauge.open.set()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/slow").status_code == 200
    # The unfinished response was no outcome, the finished one a success.
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats.total_calls == 1 and breaker.stats.total_failures == 0


def test_concurrency_permit_is_free_while_background_work_runs() -> None:
    finished = threading.Event()
    working = threading.Event()

    async def background() -> None:
        working.set()
        while not finished.is_set():
            await asyncio.sleep(0.01)

    async def answer(request: Request) -> Response:
        return PlainTextResponse("done", background=BackgroundTask(background))

    bulkhead = Bulkhead(1)
    app = Starlette(routes=[Route("/", answer)])
    app.add_middleware(ConcurrencyLimitMiddleware, bulkhead=bulkhead)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        try:
            assert client.get("/").text == "done"
            wait_for(working.is_set, "the background work started")
            # The response is complete: the permit is back though the app still runs.
            wait_for(lambda: bulkhead.active == 0, "the permit back before the app returns")
            assert working.is_set() and not finished.is_set()
        finally:
            finished.set()


# -- circuit breakers ------------------------------------------------------------------------


def breaker_app(breaker: CircuitBreaker, failing: threading.Event) -> Starlette:
    async def flaky(request: Request) -> Response:
        if failing.is_set():
            return PlainTextResponse("down", status_code=500)
        return PlainTextResponse("up")

    async def missing(request: Request) -> Response:
        return PlainTextResponse("no such thing", status_code=404)

    async def crash(request: Request) -> Response:
        raise RuntimeError("the endpoint crashed")

    app = Starlette(routes=[Route("/", flaky), Route("/missing", missing), Route("/crash", crash)])
    app.add_middleware(CircuitBreakerMiddleware, breaker=breaker)
    return app


def test_breaker_trips_on_5xx_refuses_then_recovers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", failure_threshold=2, reset_timeout=10.0, clock=clock)
    failing = threading.Event()
    with (
        serve(breaker_app(breaker, failing)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as client,
    ):
        for _ in range(3):
            assert client.get("/missing").status_code == 404  # 4xx: successes
        assert breaker.stats.consecutive_failures == 0
        failing.set()
        assert [client.get("/").status_code for _ in range(2)] == [500, 500]
        wait_for(lambda: breaker.state is CircuitState.OPEN, "the breaker open")
        clock.advance(2.5)
        refused = client.get("/")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) == math.ceil(10.0 - 2.5)
        assert refused.json()["status"] == 503
        failing.clear()
        assert client.get("/").status_code == 503  # still open: nothing reaches the app
        clock.advance(7.5)
        assert client.get("/").text == "up"  # the probe succeeds: closed again
        wait_for(lambda: breaker.state is CircuitState.CLOSED, "the breaker closed")
    assert breaker.stats.total_failures == 2
    assert breaker.stats.rejected == 2


def test_breaker_counts_exceptions_as_failures() -> None:
    breaker = CircuitBreaker("app", failure_threshold=2, reset_timeout=60.0)
    # uvicorn closes the connection after an app's exception: one connection a request.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with (
        serve(breaker_app(breaker, threading.Event())) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT, limits=fresh) as client,
    ):
        assert [client.get("/crash").status_code for _ in range(2)] == [500, 500]
        assert client.get("/").status_code == 503
    assert breaker.state is CircuitState.OPEN


def test_breaker_ignoring_server_error_status_lets_5xx_pass() -> None:
    breaker = CircuitBreaker("app", failure_threshold=1, ignore=ServerErrorStatus)
    failing = threading.Event()
    failing.set()
    with (
        serve(breaker_app(breaker, failing)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as client,
    ):
        assert [client.get("/").status_code for _ in range(3)] == [500, 500, 500]
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats.total_ignored == 3


# -- scopes that pass through ----------------------------------------------------------------


def guarded(kind: str) -> tuple[Callable[[Any], Any], Callable[[], int]]:
    """A middleware's factory whose policy refuses every http request, and its refusals."""
    if kind == "rate":
        limiter = KeyedRateLimiter(1, per=60)
        limiter.decide("")  # drained for the scopes' empty key (and counted once)

        def rate(app: Any) -> Any:
            return RateLimitMiddleware(app, limiter=limiter)

        return rate, lambda: limiter.stats.rejected
    if kind == "shed":
        manager = DegradationManager()
        manager.set_level("critical")

        def shed(app: Any) -> Any:
            return LoadSheddingMiddleware(app, manager=manager)

        return shed, lambda: sum(manager.shed_counts.values())
    if kind == "bulkhead":
        bulkhead = Bulkhead(1)
        bulkhead.acquire()

        def full(app: Any) -> Any:
            return ConcurrencyLimitMiddleware(app, bulkhead=bulkhead)

        return full, lambda: bulkhead.stats.rejected
    breaker = CircuitBreaker("app")
    breaker.force_open()

    def tripped(app: Any) -> Any:
        return CircuitBreakerMiddleware(app, breaker=breaker)

    return tripped, lambda: breaker.stats.rejected


@pytest.mark.parametrize("kind", ["rate", "shed", "bulkhead", "breaker"])
def test_websocket_and_lifespan_scopes_pass_through(kind: str) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    wrap, refusals = guarded(kind)
    middleware = wrap(app)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    headers = [(b"x-request-criticality", b"SHEDDABLE")]
    for scope_type in ("websocket", "lifespan", "http"):
        scope = {"type": scope_type, "path": "/", "headers": headers, "client": None}
        asyncio.run(middleware(scope, receive, send))
    assert seen == ["websocket", "lifespan"]  # the http request was refused
    assert refusals() == 1
    assert sent[0]["status"] in (429, 503)


def test_deadline_applies_to_http_scopes_only() -> None:
    seen: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(remaining())

    middleware = DeadlineMiddleware(app)
    for scope_type in ("websocket", "http"):
        scope = {"type": scope_type, "headers": [(b"request-timeout", b"5")]}
        asyncio.run(middleware(scope, None, None))  # type: ignore[arg-type]
    assert seen[0] == math.inf
    assert 0.0 < seen[1] <= 5.0


# -- bad options -----------------------------------------------------------------------------


def limiter_options() -> dict[str, Any]:
    return {"limiter": KeyedRateLimiter(10)}


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"limiter": object()}, TypeError, "limiter"),
        ({"key": "ip"}, TypeError, "key"),
        ({"headers": "draft"}, ValueError, "'draft'"),
        ({"headers": 1}, TypeError, "headers"),
        ({"exempt": "/healthz"}, TypeError, "exempt"),
        ({"exempt": ["healthz"]}, ValueError, "'healthz'"),
        ({"exempt": [["/a"]]}, TypeError, "['/a']"),
        ({"tokens": 0}, ValueError, "tokens"),
        ({"tokens": math.nan}, ValueError, "tokens"),
        ({"tokens": "1"}, TypeError, "tokens"),
        ({"limiter": KeyedRateLimiter(10, per=0.5)}, ValueError, "per=0.5"),
        ({"limiter": KeyedRateLimiter(0.5, burst=1)}, ValueError, "rate=0.5"),
        ({"limiter": KeyedRateLimiter(0.5, burst=1), "headers": "legacy"}, ValueError, "rate=0.5"),
    ],
)
def test_rate_limit_bad_options(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        RateLimitMiddleware(bare_app, **{**limiter_options(), **options})


def test_rate_limit_without_headers_takes_any_deciding_limiter() -> None:
    # Whole-second per matters only to the ietf fields.
    RateLimitMiddleware(bare_app, limiter=KeyedRateLimiter(10, per=0.5), headers=None)
    RateLimitMiddleware(bare_app, limiter=KeyedRateLimiter(10, per=0.5), headers="legacy")


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: LoadSheddingMiddleware(bare_app, manager=object()), TypeError, "manager"),  # type: ignore[arg-type]
        (
            lambda: LoadSheddingMiddleware(bare_app, manager=DegradationManager(), header="a b"),
            ValueError,
            "'a b'",
        ),
        (lambda: DeadlineMiddleware(bare_app, header=b"x"), TypeError, "header"),  # type: ignore[arg-type]
        (lambda: DeadlineMiddleware(bare_app, header=""), ValueError, "header"),
        (lambda: ConcurrencyLimitMiddleware(bare_app, bulkhead=3), TypeError, "bulkhead"),
        (lambda: CircuitBreakerMiddleware(bare_app, breaker=None), TypeError, "breaker"),  # type: ignore[arg-type]
        (lambda: RateLimitMiddleware(None, **limiter_options()), TypeError, "app"),  # type: ignore[arg-type]
        (lambda: client_ip_behind("10.0.0.1"), TypeError, "trusted_proxies"),
        (lambda: client_ip_behind(["10.0.0.300"]), ValueError, "'10.0.0.300'"),
        (lambda: client_ip_behind([10]), TypeError, "10"),  # type: ignore[list-item]
    ],
)
def test_other_bad_options(make: Callable[[], object], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=re.escape(words)):
        make()


def test_problem_bodies_are_json_with_matching_length() -> None:
    limiter = KeyedRateLimiter(1, per=60)
    app = RateLimitMiddleware(bare_app, limiter=limiter)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        client.get("/")
        refused = client.get("/")
    assert int(refused.headers["content-length"]) == len(refused.content)
    assert json.loads(refused.content)["title"]


def test_the_middleware_imports_no_framework() -> None:
    code = (
        "import sys, resilience.http.asgi; print(sorted(m for m in"
        " ('starlette', 'fastapi', 'uvicorn', 'httpx', 'requests') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"

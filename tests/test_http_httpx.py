"""resilience.http.httpx: the resilient transports, against real servers.

An ASGI app served by uvicorn on loopback (``http_server.serve``) fails N
times then succeeds, answers 413/429/503 with both ``Retry-After`` forms and
malformed ones, hangs, echoes headers and counts what it saw per path; a
raw socket server drops connections without an answer (RemoteProtocolError);
a closed port refuses connections; a TLS server with a self-signed
certificate fails verification. Real ``httpx.Client`` / ``httpx.AsyncClient``
send through the transports; ``sleep=`` records the waits asked for, so no
test sleeps for a retry.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trio
from http_apps import App, Dropper, Waits, closed_port, fresh, http_date, self_signed
from http_server import serve

from resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RateLimiter,
    RateLimitExceeded,
    RetryBudget,
    TimeoutExceeded,
    deadline,
    remaining,
)
from resilience.backoff import constant, exponential
from resilience.http._rules import IDEMPOTENT, parse_retry_after
from resilience.http.asgi import DeadlineMiddleware
from resilience.http.httpx import AsyncResilientTransport, ResilientTransport


def client(url: str, **options: Any) -> tuple[httpx.Client, ResilientTransport, Waits]:
    waits = Waits()
    transport = ResilientTransport(sleep=waits, **options)
    return httpx.Client(base_url=url, transport=transport), transport, waits


# -- retries on statuses ---------------------------------------------------------------------


def test_a_status_in_the_forcelist_is_retried_until_success(url: str, app: App) -> None:
    http, transport, waits = client(url, backoff=constant(0.25))
    path = fresh("/flaky", n=2)
    with http:
        response = http.get(path)
    assert response.status_code == 200 and response.text == "ok"
    assert app.seen[path] == 3
    assert waits.asked == [0.25, 0.25]
    assert response.extensions["resilience"] == {"attempts": 3, "waits": [0.25, 0.25]}
    stats = transport.stats
    assert (stats.requests, stats.attempts, stats.retries, stats.gave_up) == (1, 3, 2, 0)


def test_the_backoff_gets_the_retry_number_and_the_previous_wait(url: str, app: App) -> None:
    calls: list[tuple[int, float | None]] = []

    def backoff(n: int, previous: float | None = None) -> float:
        calls.append((n, previous))
        return n / 10

    http, _, waits = client(url, backoff=backoff, attempts=4)
    with http:
        assert http.get(fresh("/flaky", n=3)).status_code == 200
    assert calls == [(1, None), (2, 0.1), (3, 0.2)]
    assert waits.asked == [0.1, 0.2, 0.3]


def test_the_last_response_is_returned_as_is(url: str, app: App) -> None:
    http, transport, _ = client(url, attempts=3, backoff=constant(0.0))
    path = fresh("/flaky", n=10, status=502)
    with http:
        response = http.get(path)
    assert response.status_code == 502 and response.text == "failed"  # a response, not an error
    assert app.seen[path] == 3
    assert response.extensions["resilience"]["attempts"] == 3
    assert transport.stats.gave_up == 1


def test_a_status_outside_the_forcelist_is_an_answer(url: str, app: App) -> None:
    http, _, waits = client(url)
    path = fresh("/flaky", n=1, status=500)
    with http:
        assert http.get(path).status_code == 500
    assert app.seen[path] == 1 and waits.asked == []
    http, _, _ = client(url, status_forcelist={500})
    path = fresh("/flaky", n=1, status=500)
    with http:
        assert http.get(path).status_code == 200
    assert app.seen[path] == 2


@pytest.mark.parametrize("method", sorted(IDEMPOTENT - {"HEAD", "TRACE"}))
def test_idempotent_methods_are_retried(url: str, app: App, method: str) -> None:
    http, _, _ = client(url)
    path = fresh("/flaky", n=1)
    with http:
        assert http.request(method, path).status_code == 200
    assert app.seen[path] == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_other_methods_are_not_retried_once_sent(url: str, app: App, method: str) -> None:
    http, _, waits = client(url)
    path = fresh("/flaky", n=1)
    with http:
        assert http.request(method, path, content=b"x").status_code == 503
    assert app.seen[path] == 1 and waits.asked == []


def test_an_idempotency_key_opens_any_method(url: str, app: App) -> None:
    http, _, _ = client(url)
    path = fresh("/flaky", n=2)
    with http:
        response = http.post(path, content=b"order-1", headers={"Idempotency-Key": "k1"})
    assert response.status_code == 200
    assert app.bodies[path] == [b"order-1"] * 3  # the same body each time


def test_allowed_methods_are_the_callers_choice(url: str, app: App) -> None:
    http, _, _ = client(url, allowed_methods=["post"])
    path = fresh("/flaky", n=1)
    with http:
        assert http.post(path, json={"a": 1}).status_code == 200
    assert app.seen[path] == 2
    http, _, _ = client(url, allowed_methods=["POST"])
    path = fresh("/flaky", n=1)
    with http:
        assert http.get(path).status_code == 503  # GET is no longer allowed
    assert app.seen[path] == 1


def test_a_body_that_cannot_be_replayed_is_not_retried(url: str, app: App) -> None:
    http, transport, waits = client(url)
    path = fresh("/flaky", n=1)

    def chunks() -> Iterator[bytes]:
        yield b"part-1,"
        yield b"part-2"

    with http:
        response = http.put(path, content=chunks())
    assert response.status_code == 503
    assert app.seen[path] == 1 and app.bodies[path] == [b"part-1,part-2"]
    assert waits.asked == []
    assert transport.stats.not_replayable == 1


def test_a_retry_budget_stops_retry_storms(url: str, app: App) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.0)
    http, transport, waits = client(url, budget=budget)
    path = fresh("/flaky", n=1)
    with http:
        assert http.get(path).status_code == 503
    assert app.seen[path] == 1 and waits.asked == []
    assert transport.stats.budget_exhausted == 1


def test_discarded_responses_are_closed(url: str, app: App) -> None:
    # One connection in the pool: a discarded response left open would keep it,
    # and the retry would wait for the pool until its timeout.
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    responses: list[httpx.Response] = []

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = inner.handle_request(request)
            responses.append(response)
            return response

    waits = Waits()
    transport = ResilientTransport(Recording(), sleep=waits)
    path = fresh("/flaky", n=2)
    with httpx.Client(
        base_url=url, transport=transport, timeout=httpx.Timeout(5.0, pool=1.0)
    ) as http:
        response = http.get(path)
    assert response.status_code == 200
    assert len(responses) == 3
    assert [r.is_closed for r in responses[:2]] == [True, True]


# -- Retry-After -------------------------------------------------------------------------------


def test_retry_after_seconds_override_the_backoff_and_its_max(url: str, app: App) -> None:
    http, transport, waits = client(url, backoff=exponential(max=1.0))
    path = fresh("/flaky", n=1, status=429, retry_after=7)
    with http:
        assert http.get(path).status_code == 200
    assert waits.asked == [7.0]
    assert transport.stats.retry_after_honoured == 1


def test_retry_after_as_an_http_date(url: str, app: App) -> None:
    http, _, waits = client(url)
    path = fresh("/flaky", n=1, status=503, retry_after=http_date(30).replace(" ", "%20"))
    with http:
        assert http.get(path).status_code == 200
    [wait] = waits.asked
    assert 25.0 < wait <= 30.0  # whole seconds in the date; the request took some time


@pytest.mark.parametrize("status", [413, 429, 503])
def test_retry_after_statuses_are_retried_outside_the_forcelist(
    url: str, app: App, status: int
) -> None:
    http, _, waits = client(url, status_forcelist=())
    with http:
        assert http.get(fresh("/flaky", n=1, status=status, retry_after=2)).status_code == 200
        assert waits.asked == [2.0]
        # Without the header, outside the forcelist, the status is an answer.
        path = fresh("/flaky", n=1, status=status)
        assert http.get(path).status_code == status
        assert app.seen[path] == 1
        # And not for a method that may not be retried.
        path = fresh("/flaky", n=1, status=status, retry_after=2)
        assert http.post(path).status_code == status
        assert app.seen[path] == 1


def test_other_statuses_with_retry_after_are_not_retried(url: str, app: App) -> None:
    http, transport, waits = client(url)
    path = fresh("/flaky", n=1, status=500, retry_after=1)
    with http:
        assert http.get(path).status_code == 500
        # Nor read: a status that is an answer says nothing of a malformed header.
        assert http.get(fresh("/flaky", n=1, status=500, retry_after="soon")).status_code == 500
    assert app.seen[path] == 1 and waits.asked == []
    assert transport.stats.retry_after_malformed == 0


def test_retry_after_beyond_the_max_returns_the_response_at_once(url: str, app: App) -> None:
    http, transport, waits = client(url, retry_after_max=60.0)
    path = fresh("/flaky", n=1, status=503, retry_after=120)
    with http:
        response = http.get(path)
    assert response.status_code == 503 and response.headers["retry-after"] == "120"
    assert app.seen[path] == 1 and waits.asked == []
    assert transport.stats.retry_after_too_long == 1
    http, _, waits = client(url, retry_after_max=60.0)
    path = fresh("/flaky", n=1, status=503, retry_after=60)  # at the max: waited
    with http:
        assert http.get(path).status_code == 200
    assert waits.asked == [60.0]


def test_retry_after_beyond_the_deadline_returns_the_response_at_once(url: str, app: App) -> None:
    http, transport, waits = client(url)
    path = fresh("/flaky", n=1, status=429, retry_after=20)
    with http, deadline(10.0):
        assert http.get(path).status_code == 429
    assert app.seen[path] == 1 and waits.asked == []
    assert transport.stats.retry_after_too_long == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_a_malformed_retry_after_is_ignored_and_counted(url: str, app: App, value: str) -> None:
    http, transport, waits = client(url, backoff=constant(0.5))
    path = fresh("/flaky", n=1, status=503, retry_after=value.replace(" ", "%20"))
    with http:
        assert http.get(path).status_code == 200
    assert waits.asked == [0.5]  # the backoff's
    assert transport.stats.retry_after_malformed == 1
    assert transport.stats.retry_after_honoured == 0


def test_retry_after_is_ignored_when_asked(url: str, app: App) -> None:
    http, _, waits = client(url, backoff=constant(0.5), respect_retry_after_header=False)
    path = fresh("/flaky", n=1, status=429, retry_after=100)
    with http:
        assert http.get(path).status_code == 200
    assert waits.asked == [0.5]


def test_parse_retry_after() -> None:
    now = 1_000_000_000.0
    assert parse_retry_after("120", lambda: now) == 120.0
    assert parse_retry_after(" 0 ", lambda: now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), lambda: now) == 90.0
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), lambda: now) == 0.0
    for bad in ("", "-1", "1.5", "1e3", "soon", "Sun, 09 Sep 2001 01:46:40", "٣"):
        assert parse_retry_after(bad, lambda: now) is None, bad


# -- transport errors ----------------------------------------------------------------------------


def test_connect_errors_are_retried_for_any_method() -> None:
    http, transport, waits = client(f"http://127.0.0.1:{closed_port()}", backoff=constant(0.1))
    with http, pytest.raises(httpx.ConnectError):
        http.post("/", content=b"x")
    assert waits.asked == [0.1, 0.1]
    assert transport.stats.attempts == 3 and transport.stats.gave_up == 1


def test_the_last_transport_error_is_raised_unchanged() -> None:
    raised: list[Exception] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raised.append(httpx.ConnectError(f"refused #{len(raised)}", request=request))
        raise raised[-1]

    transport = ResilientTransport(httpx.MockTransport(refuse), sleep=Waits())
    with httpx.Client(transport=transport) as http, pytest.raises(httpx.ConnectError) as caught:
        http.get("http://example.test/")
    assert len(raised) == 3 and caught.value is raised[-1]
    assert caught.value.__cause__ is None and caught.value.__context__ is None



def test_a_dropped_connection_is_retried_for_allowed_methods(dropper: Dropper) -> None:
    http, _, waits = client(dropper.url)
    with http:
        assert http.get("/").text == "ok"
    assert dropper.seen == 2 and len(waits.asked) == 1


def test_a_dropped_connection_is_not_retried_for_post(dropper: Dropper) -> None:
    http, _, waits = client(dropper.url)
    with http, pytest.raises(httpx.RemoteProtocolError):
        http.post("/", content=b"x")
    assert dropper.seen == 1 and waits.asked == []


def test_a_read_timeout_is_retried_for_allowed_methods_only(url: str, app: App) -> None:
    http, _, waits = client(url, attempts=2)
    with http:
        path = fresh("/hang")
        with pytest.raises(httpx.ReadTimeout):
            http.get(path, timeout=0.2)
        assert app.seen[path] == 2 and len(waits.asked) == 1
        path = fresh("/hang")
        with pytest.raises(httpx.ReadTimeout):
            http.post(path, timeout=0.2)
        assert app.seen[path] == 1


@pytest.fixture(scope="module")
def tls_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A TLS server whose certificate is self-signed: no client verifies it."""
    key, cert = self_signed(tmp_path_factory.mktemp("tls"))
    with serve(App(), ssl_keyfile=key, ssl_certfile=cert) as url:
        yield url.replace("http://", "https://")


def test_a_tls_verification_failure_is_never_retried(tls_url: str) -> None:
    http, transport, waits = client(tls_url)
    with http, pytest.raises(httpx.ConnectError):
        http.get("/")
    assert waits.asked == [] and transport.stats.attempts == 1


# -- the deadline ----------------------------------------------------------------------------------


def test_the_deadline_caps_every_timeout(url: str, app: App) -> None:
    seen: list[dict[str, float]] = []
    inner = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(dict(request.extensions["timeout"]))
            return inner.handle_request(request)

    transport = ResilientTransport(Recording(), sleep=Waits(), attempts=1)
    path = fresh("/hang")
    with httpx.Client(base_url=url, transport=transport, timeout=30.0) as http:
        with deadline(0.3), pytest.raises(httpx.ReadTimeout):
            http.get(path)  # without the cap it would wait HANG_SECONDS for the answer
        assert set(seen[0]) == {"connect", "read", "write", "pool"}
        assert all(0.0 < seconds <= 0.3 for seconds in seen[0].values())
        http.get("/echo", timeout=httpx.Timeout(30.0, connect=0.05))
        assert seen[1] == {"connect": 0.05, "read": 30.0, "write": 30.0, "pool": 30.0}
        with deadline(10.0):
            http.get("/echo", timeout=httpx.Timeout(30.0, connect=0.05))
        assert seen[2]["connect"] == 0.05 and 9.0 < seen[2]["read"] <= 10.0


def test_no_retry_starts_past_the_deadline(url: str, app: App) -> None:
    http, _, waits = client(url, backoff=constant(5.0))
    path = fresh("/flaky", n=1)
    with http, deadline(2.0):
        assert http.get(path).status_code == 503
    assert app.seen[path] == 1 and waits.asked == []


def test_nothing_is_sent_once_the_deadline_has_passed(url: str, app: App) -> None:
    http, _, _ = client(url)
    path = fresh("/echo")
    with http, deadline(0.0), pytest.raises(TimeoutExceeded):
        http.get(path)
    assert app.seen[path] == 0


def test_the_deadline_is_sent_as_request_timeout_when_asked(url: str) -> None:
    http, _, _ = client(url, propagate_deadline=True)
    with http:
        with deadline(5.0):
            sent = http.get("/echo").json()
        assert 4.0 < float(sent["request-timeout"]) <= 5.0
        assert "request-timeout" not in http.get("/echo").json()  # no deadline, nothing sent
    http, _, _ = client(url)
    with http, deadline(5.0):
        assert "request-timeout" not in http.get("/echo").json()


def test_the_callers_deadline_reaches_the_server(url: str) -> None:
    # Through a real server whose DeadlineMiddleware sets deadline() from the header.
    async def left(scope: Any, receive: Any, send: Any) -> None:
        body = str(remaining()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    http, _, _ = client(url, propagate_deadline=True)
    with serve(DeadlineMiddleware(left)) as edge, http, deadline(5.0):
        assert 4.0 < float(http.get(edge).text) <= 5.0


# -- breaker, limiter, bulkhead ----------------------------------------------------------------


def test_a_breaker_per_origin(url: str, app: App) -> None:
    made: dict[str, CircuitBreaker] = {}

    def breaker(origin: str) -> CircuitBreaker:
        made[origin] = CircuitBreaker(origin, failure_threshold=2, reset_timeout=60.0)
        return made[origin]

    other_app = App()
    with serve(other_app) as other:
        http, _, _ = client(url, breaker=breaker, attempts=1)
        path = fresh("/status", status=502)
        with http:
            for _ in range(2):
                assert http.get(path).status_code == 502  # 5xx: failures
            with pytest.raises(CircuitOpenError):
                http.get(path)  # refused before anything is sent
            assert app.seen[path] == 2
            assert http.get(f"{other}/echo").status_code == 200  # another origin, its own
        assert sorted(made) == sorted([url, other])
        assert made[url].state == CircuitState.OPEN and made[other].state == CircuitState.CLOSED


def state(breaker: CircuitBreaker) -> CircuitState:
    """The breaker's state now (a call, so a type checker does not pin it between reads)."""
    return breaker.state


def test_4xx_are_breaker_successes_and_transport_errors_failures(url: str) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60.0)
    http, _, _ = client(url, breaker=breaker, attempts=1)
    with http:
        for _ in range(4):
            assert http.get(fresh("/status", status=404)).status_code == 404
        assert state(breaker) == CircuitState.CLOSED
    http, _, waits = client(f"http://127.0.0.1:{closed_port()}", breaker=breaker, attempts=3)
    with http, pytest.raises(CircuitOpenError):
        http.get("/")  # two connect errors open it; the third attempt is refused
    assert state(breaker) == CircuitState.OPEN and len(waits.asked) == 2


def test_a_refusal_is_not_retried(url: str, app: App) -> None:
    limiter = RateLimiter(1, per=60.0, burst=1)
    http, _, waits = client(url, limiter=limiter)
    with http:
        assert http.get(fresh("/echo")).status_code == 200
        path = fresh("/echo")
        with pytest.raises(RateLimitExceeded):
            http.get(path)
    assert app.seen[path] == 0 and waits.asked == []


def test_policies_apply_per_attempt(url: str, app: App) -> None:
    limiter = RateLimiter(1, per=60.0, burst=2)
    http, _, waits = client(url, limiter=limiter)
    path = fresh("/flaky", n=5)
    with http, pytest.raises(RateLimitExceeded):
        http.get(path)  # two attempts take the two tokens; the third is refused
    assert app.seen[path] == 2 and len(waits.asked) == 2


def test_factories_are_kept_for_max_origins(url: str) -> None:
    calls: list[str] = []

    def bulkhead(origin: str) -> Bulkhead:
        calls.append(origin)
        return Bulkhead(4)

    http, _, _ = client(url, bulkhead=bulkhead, max_origins=1)
    with serve(App()) as other, http:
        http.get("/echo")
        http.get("/echo")
        http.get(f"{other}/echo")  # evicts the first origin's
        http.get("/echo")
    assert calls == [url, other, url]


def test_a_factory_must_make_policies(url: str) -> None:
    http, _, _ = client(url, breaker=lambda origin: "not a policy")
    with http, pytest.raises(TypeError, match="breaker factory must return a policy"):
        http.get("/echo")


# -- async -----------------------------------------------------------------------------------------


class AsyncWaits(Waits):
    """A recording async ``sleep=`` (``sleep``: a coroutine function, as the hook asks)."""

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)


def test_async_retries_against_a_real_server(url: str, app: App) -> None:
    waits = AsyncWaits()
    transport = AsyncResilientTransport(sleep=waits.sleep, backoff=constant(0.2))
    path = fresh("/flaky", n=2, status=429)
    post = fresh("/flaky", n=1)

    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=url, transport=transport) as http:
            return await http.get(path), await http.post(post)

    got, posted = asyncio.run(main())
    assert got.status_code == 200 and got.extensions["resilience"]["attempts"] == 3
    assert posted.status_code == 503 and app.seen[post] == 1
    assert waits.asked == [0.2, 0.2] and app.seen[path] == 3


def test_async_connect_errors_and_retry_after() -> None:
    waits = AsyncWaits()
    transport = AsyncResilientTransport(sleep=waits.sleep, backoff=constant(0.1))

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            await http.post(f"http://127.0.0.1:{closed_port()}/", content=b"x")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(main())
    assert waits.asked == [0.1, 0.1]


def test_async_waits_never_block_the_loop(url: str, app: App) -> None:
    # The default sleep: a real (short) wait, during which the loop runs others.
    transport = AsyncResilientTransport(backoff=constant(0.2))
    path = fresh("/flaky", n=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> int:
        task = asyncio.create_task(ticker())
        async with httpx.AsyncClient(base_url=url, transport=transport) as http:
            response = await http.get(path)
        task.cancel()
        return response.status_code

    assert asyncio.run(main()) == 200
    assert ticks >= 5 and app.seen[path] == 2


def test_cancellation_returns_permits_and_closes_responses(url: str, app: App) -> None:
    bulkhead = Bulkhead(1)
    responses: list[httpx.Response] = []
    inner = httpx.AsyncHTTPTransport()

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            responses.append(response)
            return response

    async def main() -> None:
        started = asyncio.Event()

        async def forever(seconds: float) -> None:
            started.set()
            await asyncio.Event().wait()

        transport = AsyncResilientTransport(Recording(), bulkhead=bulkhead, sleep=forever)
        async with httpx.AsyncClient(base_url=url, transport=transport) as http:
            # Cancelled in the retry wait: the discarded 503 is closed already.
            task = asyncio.create_task(http.get(fresh("/flaky", n=1)))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert [r.is_closed for r in responses] == [True]
            assert bulkhead.active == 0
            # Cancelled in flight: the permit goes back.
            task = asyncio.create_task(http.get(fresh("/hang")))
            while bulkhead.active == 0:
                await asyncio.sleep(0.01)
            with pytest.raises(BulkheadFullError):
                await http.get("/echo")  # refused while the first holds the only permit
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert bulkhead.active == 0
            assert (await http.get("/echo")).status_code == 200

    asyncio.run(main())


# -- bad options ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"attempts": 0}, ValueError, "attempts"),
        ({"attempts": 2.5}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"backoff": 1.0}, TypeError, "backoff"),
        ({"budget": 0.2}, TypeError, "budget"),
        ({"allowed_methods": "GET"}, TypeError, "allowed_methods"),
        ({"allowed_methods": [1]}, TypeError, "allowed_methods"),
        ({"status_forcelist": 503}, TypeError, "status_forcelist"),
        ({"status_forcelist": [600]}, ValueError, "status_forcelist"),
        ({"status_forcelist": ["503"]}, TypeError, "status_forcelist"),
        ({"respect_retry_after_header": 1}, TypeError, "respect_retry_after_header"),
        ({"retry_after_max": -1.0}, ValueError, "retry_after_max"),
        ({"retry_after_max": float("nan")}, ValueError, "retry_after_max"),
        ({"retry_after_max": "300"}, TypeError, "retry_after_max"),
        ({"breaker": "cb"}, TypeError, "breaker"),
        ({"limiter": 10}, TypeError, "limiter"),
        ({"bulkhead": object()}, TypeError, "bulkhead"),
        ({"max_origins": 0}, ValueError, "max_origins"),
        ({"max_origins": None}, TypeError, "max_origins"),
        ({"propagate_deadline": "yes"}, TypeError, "propagate_deadline"),
        ({"sleep": 1}, TypeError, "sleep"),
    ],
)
@pytest.mark.parametrize("kind", [ResilientTransport, AsyncResilientTransport])
def test_bad_options_name_the_argument_and_value(
    kind: Callable[..., object], options: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as caught:
        kind(**options)
    assert repr(next(iter(options.values())))[:20] in str(caught.value)


def test_the_wrapped_transport_must_be_of_the_right_kind() -> None:
    with pytest.raises(TypeError, match=r"transport must be an httpx\.BaseTransport"):
        ResilientTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"transport must be an httpx\.AsyncBaseTransport"):
        AsyncResilientTransport(httpx.HTTPTransport())  # type: ignore[arg-type]


def test_a_pool_timeout_is_retried_for_any_method(url: str, app: App) -> None:
    # One connection, held by a hanging request: the POST never gets one in time.
    waits = Waits()
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = ResilientTransport(inner, sleep=waits, backoff=constant(0.1))
    timeout = httpx.Timeout(5.0, pool=0.1)
    with httpx.Client(base_url=url, transport=transport, timeout=timeout) as http:
        holder = threading.Thread(target=lambda: http.get(fresh("/hang")))
        holder.start()
        while not any(key.startswith("/hang") for key in app.seen):
            time.sleep(0.01)
        path = fresh("/echo")
        with pytest.raises(httpx.PoolTimeout):
            http.post(path, content=b"x")
        holder.join()
    assert app.seen[path] == 0 and waits.asked == [0.1, 0.1]


@pytest.mark.parametrize(
    ("error", "retried_for_post", "retried_for_get"),
    [
        (httpx.ConnectError, True, True),
        (httpx.ConnectTimeout, True, True),
        (httpx.PoolTimeout, True, True),
        (httpx.ReadError, False, True),
        (httpx.WriteError, False, True),
        (httpx.ReadTimeout, False, True),
        (httpx.WriteTimeout, False, True),
        (httpx.RemoteProtocolError, False, True),
        (httpx.LocalProtocolError, False, False),
        (httpx.UnsupportedProtocol, False, False),
        (httpx.DecodingError, False, False),
    ],
)
def test_which_transport_errors_are_retried(
    error: type[httpx.HTTPError], retried_for_post: bool, retried_for_get: bool
) -> None:
    # Fast and exhaustive over httpx's errors; the real servers above prove the common ones.
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("failed", request=request)  # type: ignore[call-arg]

    for method, retried in (("POST", retried_for_post), ("GET", retried_for_get)):
        waits = Waits()
        transport = ResilientTransport(httpx.MockTransport(fail), sleep=waits, attempts=2)
        with httpx.Client(transport=transport) as http, pytest.raises(error):
            http.request(method, "http://example.test/")
        assert len(waits.asked) == (1 if retried else 0), method


def test_the_async_transport_under_trio(url: str, app: App) -> None:
    # Trio's own sleep and cancellation: the default waits and the bulkhead's permits.
    bulkhead = Bulkhead(1)
    transport = AsyncResilientTransport(backoff=constant(0.01), bulkhead=bulkhead)
    path = fresh("/flaky", n=2)

    async def main() -> tuple[int, bool]:
        async with httpx.AsyncClient(base_url=url, transport=transport) as http:
            status = (await http.get(path)).status_code
            with trio.move_on_after(0.2) as scope:
                await http.get(fresh("/hang"))
            return status, scope.cancelled_caught

    assert trio.run(main) == (200, True)
    assert app.seen[path] == 3 and bulkhead.active == 0


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, pickle.dumps])
def test_transports_are_not_copied(duplicate: Callable[[object], object]) -> None:
    for transport in (ResilientTransport(), AsyncResilientTransport()):
        with pytest.raises(TypeError, match="cannot be copied or pickled"):
            duplicate(transport)

"""Resilient httpx transports: retries, breaker, limiter and bulkhead around any transport.

``ResilientTransport`` (sync) and ``AsyncResilientTransport`` wrap an httpx
transport (by default ``httpx.HTTPTransport()`` / ``httpx.AsyncHTTPTransport()``)::

    client = httpx.Client(transport=ResilientTransport(attempts=3, breaker=...))

The retry rules are those of ``resilience.http._rules`` (urllib3's option
names; method first; ``Retry-After`` honoured...). Here, httpx's errors are
sorted into what they mean for a retry: ``ConnectError``,
``ConnectTimeout`` and ``PoolTimeout`` happen before anything was sent;
read and write errors and timeouts and ``RemoteProtocolError`` after; a
certificate that does not verify, and any other error, is never retried.

Each attempt goes through the policies of its origin (``Origins``); a 5xx
response reaches them as an ``httpx.HTTPStatusError`` (so a breaker counts
it as a failure), a 4xx as a success. The current ``deadline()`` caps each
attempt's timeouts; ``propagate_deadline=True`` also sends what is left as
``Request-Timeout``.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from .._policy import sleep_async, sleep_sync
from ..backoff import Backoff
from ..retry import RetryBudget
from ..timeout import remaining
from ._rules import (
    DEFAULT_STATUS_FORCELIST,
    IDEMPOTENT,
    NEVER,
    NOT_SENT,
    REQUEST_TIMEOUT,
    SENT,
    Client,
    PolicyOption,
    Run,
    TransportStats,
    caused_by,
    origin,
    request_timeout,
)

__all__ = ["IDEMPOTENT", "AsyncResilientTransport", "ResilientTransport", "TransportStats"]

TIMEOUT_PHASES = ("connect", "read", "write", "pool")


class _ServerError(httpx.HTTPStatusError):
    """A 5xx response, raised through the attempt's policies so a breaker counts a failure."""


def error_kind(error: BaseException) -> int:
    """What an exception of the wrapped transport means for a retry (see ``_rules``)."""
    if isinstance(error, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return NOT_SENT
    if isinstance(error, httpx.ConnectError):
        return NEVER if caused_by(error, ssl.SSLCertVerificationError) else NOT_SENT
    if isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return SENT
    return NEVER


def first_try() -> dict[str, Any]:
    """``extensions["resilience"]`` of a response to the first attempt (``Run.report``'s form)."""
    return {"attempts": 1, "waits": []}


def _origin(url: httpx.URL) -> str:
    return origin(url.scheme, url.host, url.port)


class _Base(Client):
    """What both transports add to ``Client``: httpx's requests and responses read."""

    def _start(self, request: httpx.Request) -> Run:
        # An in-memory body (bytes, str, a form, JSON) can be sent again; a stream cannot.
        replayable = isinstance(request.stream, httpx.ByteStream)
        return Run(self._rules, request.method, request.headers, replayable)

    def _prepare(self, request: httpx.Request, timeouts: Any, left: float) -> None:
        """Fit the attempt to the ``left`` seconds of the deadline: its timeouts, and
        Request-Timeout."""
        self._check_left(left)
        given = timeouts if isinstance(timeouts, dict) else {}
        capped = {}
        for phase in TIMEOUT_PHASES:
            seconds = given.get(phase)
            capped[phase] = left if seconds is None else min(seconds, left)
        request.extensions = {**request.extensions, "timeout": capped}
        if self._propagate:
            request.headers[REQUEST_TIMEOUT] = request_timeout(left)


class ResilientTransport(_Base, httpx.BaseTransport):
    """An httpx transport that retries, and applies a breaker, limiter and bulkhead.

    ``transport``: the transport that sends (default ``httpx.HTTPTransport()``).
    ``attempts``, ``backoff``, ``budget``: as for ``Retry``.
    ``allowed_methods``, ``status_forcelist``, ``respect_retry_after_header``,
    ``retry_after_max``: as urllib3's ``Retry`` (see the module docstring).
    ``breaker``, ``limiter``, ``bulkhead``: a policy shared by every origin,
    or a factory called once per origin ``"scheme://host:port"`` (the
    ``max_origins`` last used keep theirs); applied to each attempt, their
    refusals raised before anything is sent and never retried.
    ``propagate_deadline``: send the remaining ``deadline()`` as
    ``Request-Timeout``. ``sleep``: the waits' sleep (tests pass a recorder).
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: RetryBudget | None = None,
        allowed_methods: Iterable[str] = IDEMPOTENT,
        status_forcelist: Iterable[int] = DEFAULT_STATUS_FORCELIST,
        respect_retry_after_header: bool = True,
        retry_after_max: float = 300.0,
        breaker: PolicyOption = None,
        limiter: PolicyOption = None,
        bulkhead: PolicyOption = None,
        max_origins: int = 1024,
        propagate_deadline: bool = False,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"transport must be an httpx.BaseTransport, got {transport!r}")
        super().__init__(
            attempts=attempts,
            backoff=backoff,
            budget=budget,
            allowed_methods=allowed_methods,
            status_forcelist=status_forcelist,
            respect_retry_after_header=respect_retry_after_header,
            retry_after_max=retry_after_max,
            breaker=breaker,
            limiter=limiter,
            bulkhead=bulkhead,
            max_origins=max_origins,
            propagate_deadline=propagate_deadline,
            sleep=sleep,
        )
        self._transport = httpx.HTTPTransport() if transport is None else transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        rules = self._rules
        rules.begin()
        run: Run | None = None  # made once a retry is in question (see Run)
        timeouts = request.extensions.get("timeout")
        while True:
            left = remaining()
            if left != math.inf:
                self._prepare(request, timeouts, left)
            try:
                if self._guarded:
                    response = self._attempt(request)
                else:
                    response = self._transport.handle_request(request)
            except Exception as error:
                run = run or self._start(request)
                if not run.after_error(error_kind(error)):
                    raise  # the last error, unchanged
            else:
                if run is None and response.status_code not in rules.watched:
                    response.extensions["resilience"] = first_try()
                    return response
                run = run or self._start(request)
                if not run.after_response(response.status_code, response.headers):
                    response.extensions["resilience"] = run.report()
                    return response
                response.close()  # discarded: its connection is freed for the next attempt
            sleep_sync(run.delay, rules.sleep)
            run.next_attempt()

    def _attempt(self, request: httpx.Request) -> httpx.Response:
        """One send, through the origin's policies."""
        guarded = self._origins.get(_origin(request.url))
        try:
            return guarded(request)  # type: ignore[no-any-return]
        except _ServerError as failed:
            return failed.response

    def _judged(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        if response.status_code >= 500:
            raise _ServerError(f"{response.status_code}", request=request, response=response)
        return response

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"<ResilientTransport attempts={self._rules.attempts} over {self._transport!r}>"


class AsyncResilientTransport(_Base, httpx.AsyncBaseTransport):
    """``ResilientTransport`` for ``httpx.AsyncClient``: the same options and rules.

    It never blocks the event loop (its waits and the policies' are
    awaited); a cancelled request returns every permit it held and closes
    the response it was about to discard.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: RetryBudget | None = None,
        allowed_methods: Iterable[str] = IDEMPOTENT,
        status_forcelist: Iterable[int] = DEFAULT_STATUS_FORCELIST,
        respect_retry_after_header: bool = True,
        retry_after_max: float = 300.0,
        breaker: PolicyOption = None,
        limiter: PolicyOption = None,
        bulkhead: PolicyOption = None,
        max_origins: int = 1024,
        propagate_deadline: bool = False,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(f"transport must be an httpx.AsyncBaseTransport, got {transport!r}")
        super().__init__(
            attempts=attempts,
            backoff=backoff,
            budget=budget,
            allowed_methods=allowed_methods,
            status_forcelist=status_forcelist,
            respect_retry_after_header=respect_retry_after_header,
            retry_after_max=retry_after_max,
            breaker=breaker,
            limiter=limiter,
            bulkhead=bulkhead,
            max_origins=max_origins,
            propagate_deadline=propagate_deadline,
            sleep=sleep,
        )
        self._transport = httpx.AsyncHTTPTransport() if transport is None else transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rules = self._rules
        rules.begin()
        run: Run | None = None  # made once a retry is in question (see Run)
        timeouts = request.extensions.get("timeout")
        while True:
            left = remaining()
            if left != math.inf:
                self._prepare(request, timeouts, left)
            try:
                if self._guarded:
                    response = await self._attempt(request)
                else:
                    response = await self._transport.handle_async_request(request)
            except Exception as error:
                run = run or self._start(request)
                if not run.after_error(error_kind(error)):
                    raise  # the last error, unchanged
            else:
                if run is None and response.status_code not in rules.watched:
                    response.extensions["resilience"] = first_try()
                    return response
                run = run or self._start(request)
                if not run.after_response(response.status_code, response.headers):
                    response.extensions["resilience"] = run.report()
                    return response
                await response.aclose()
            await sleep_async(run.delay, rules.sleep)
            run.next_attempt()

    async def _attempt(self, request: httpx.Request) -> httpx.Response:
        guarded = self._origins.get(_origin(request.url))
        try:
            return await guarded(request)  # type: ignore[no-any-return]
        except _ServerError as failed:
            return failed.response

    async def _judged(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        if response.status_code >= 500:
            raise _ServerError(f"{response.status_code}", request=request, response=response)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"<AsyncResilientTransport attempts={self._rules.attempts} over {self._transport!r}>"

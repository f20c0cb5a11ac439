"""ASGI 3 middleware: rate limits, load shedding, deadlines, concurrency limits, breakers.

Pure ASGI, no framework: each class wraps an app and works with Starlette's
and FastAPI's ``app.add_middleware(Cls, **options)`` as with any ASGI
server. Only ``http`` scopes are guarded; ``websocket`` and ``lifespan``
scopes go straight to the app.

A refusal is an HTTP answer, never an exception: 429 (rate limit) or 503
(shed, concurrency limit full, breaker open), with ``Retry-After`` =
ceil(``retry_after``) seconds (at least 1; 1 when the policy cannot tell,
left out when it is infinite) and an RFC 9457 ``application/problem+json`` body — for 429
the ``quota-exceeded`` problem type of draft-ietf-httpapi-ratelimit-headers.

A permit (bulkhead, breaker) is held until the app's response is complete —
its last body chunk sent — and given back when the app fails, the client
goes away or the request is cancelled, whichever comes first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, MutableMapping
from typing import Any, TypeAlias

from .._core._validate import positive
from .._policy import Policy
from ..degradation import Criticality, DegradationManager, request_criticality
from ..errors import BulkheadFullError, CircuitOpenError, LoadShedError
from ..timeout import deadline

__all__ = [
    "CircuitBreakerMiddleware",
    "ConcurrencyLimitMiddleware",
    "DeadlineMiddleware",
    "LoadSheddingMiddleware",
    "RateLimitMiddleware",
    "ServerErrorStatus",
    "client_ip",
    "client_ip_behind",
]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The problem type the rate-limit headers draft registers for a 429.
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


# -- the client's address ------------------------------------------------------------------


def client_ip(scope: Scope, *, trusted_proxies: Iterable[str] = ()) -> str:
    """The address of the client of an ASGI ``scope`` ("" when the server gives none).

    The peer's address; when the peer is one of ``trusted_proxies`` (addresses
    or networks, ``"10.0.0.0/8"``), the nearest address of ``X-Forwarded-For``
    that is not a trusted proxy (a proxy appends the address it heard from,
    so the list is read from the right). Usable as a rate limit's ``key=``
    as it is; ``client_ip_behind(proxies)`` parses the proxies once.
    """
    if trusted_proxies:
        return client_ip_behind(trusted_proxies)(scope)
    client = scope.get("client")
    return str(client[0]) if client else ""


def client_ip_behind(trusted_proxies: Iterable[str]) -> Callable[[Scope], str]:
    """``client_ip`` with ``trusted_proxies`` parsed once: a ``key=`` for a limiter.

    ``X-Forwarded-For`` is believed only when the peer is a trusted proxy,
    and only as far back as trusted proxies wrote it: a client cannot spoof
    its address by sending the header itself. An entry that is not an
    address ends the walk at the last hop known good.
    """
    networks = _networks(trusted_proxies)

    def untrusted(address: str) -> bool | None:
        """Whether ``address`` is not a trusted proxy; None: it is no address at all."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        return not any(ip in network for network in networks)

    def key(scope: Scope) -> str:
        hop = client_ip(scope)
        if untrusted(hop) is not False:
            return hop
        forwarded = b",".join(
            value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
        )
        for entry in reversed(forwarded.decode("latin-1").split(",")):
            address = entry.strip()
            if not address:
                continue
            outside = untrusted(address)
            if outside is None:
                return hop
            hop = address
            if outside:
                return hop
        return hop

    return key


def _networks(trusted_proxies: object) -> tuple[Network, ...]:
    if isinstance(trusted_proxies, (str, bytes)) or not isinstance(trusted_proxies, Iterable):
        raise TypeError(
            f"trusted_proxies must be an iterable of addresses or networks, got {trusted_proxies!r}"
        )
    networks = []
    for proxy in trusted_proxies:
        if not isinstance(proxy, str):
            raise TypeError(f"trusted_proxies must hold str addresses, got {proxy!r}")
        try:
            networks.append(ipaddress.ip_network(proxy.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies must hold addresses or networks, got {proxy!r}"
            ) from None
    return tuple(networks)


# -- answers ---------------------------------------------------------------------------------


def retry_after_seconds(retry_after: float | None) -> int | None:
    """The ``Retry-After`` of a refusal: whole seconds, rounded up, at least 1 (a
    refusal that invited an instant retry would invite a storm); 1 when the policy
    cannot tell (None); None (no header) when no wait would do (inf)."""
    if retry_after is None:
        return 1
    if math.isinf(retry_after):
        return None
    return max(1, math.ceil(retry_after))


async def _refuse(
    send: Send,
    status: int,
    retry_after: int | None,
    problem: Mapping[str, object],
    fields: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer ``status`` with a problem+json body and ``Retry-After``, then end the response."""
    body = json.dumps({**problem, "status": status}).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *fields,
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _unavailable(detail: str) -> Mapping[str, object]:
    return {"type": "about:blank", "title": "Service Unavailable", "detail": detail}


def _app(app: object) -> ASGIApp:
    if not callable(app):
        raise TypeError(f"app must be an ASGI app (callable), got {app!r}")
    return app


def _header_name(argument: str, value: object) -> bytes:
    """An HTTP field name as ASGI servers give it: lower case bytes."""
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str header name, got {value!r}")
    if not value or not value.isascii() or any(c in value for c in ' \t\r\n:"(),;=@[]{}\\/'):
        raise ValueError(f"{argument} must be an HTTP header name, got {value!r}")
    return value.lower().encode("ascii")


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case) in ``scope``, or None."""
    for field, value in scope.get("headers", ()):
        if field == name:
            return bytes(value)
    return None


# -- rate limits -----------------------------------------------------------------------------


class RateLimitMiddleware:
    """429 when ``limiter`` refuses the request's ``key``; rate-limit headers on the rest.

    ``limiter``: anything with ``adecide(key=..., tokens=...)`` returning a
    ``RateDecision`` — a ``KeyedRateLimiter``, a ``RedisRateLimiter``. While
    a Redis store is unreachable its ``on_error`` decides (the decision comes
    back allowed or refused, never as an error): an outage is never a 500.
    ``key(scope)`` names the bucket (default: ``client_ip``; a function
    returning None gives a ``RedisRateLimiter`` its unkeyed bucket, the one
    a ``lease`` needs). Each request takes ``tokens``. Paths in ``exempt``
    (exact ``scope["path"]``) are not limited and carry no headers.

    ``headers="ietf"`` (draft-ietf-httpapi-ratelimit-headers-10) adds to
    every limited response ``RateLimit-Policy: "<name>";q=<rate>;w=<per>``
    and ``RateLimit: "<name>";r=<remaining>;t=<seconds until full>`` (on a
    429, ``t`` is the ``Retry-After``); the name is the limiter's, else
    ``"default"``, and ``per`` must be whole seconds. ``"legacy"`` adds
    ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (the same figures);
    None adds nothing.
    """

    __slots__ = (
        "_adecide",
        "_app",
        "_exempt",
        "_key",
        "_mode",
        "_name",
        "_policy",
        "_quota",
        "_tokens",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Any,
        key: Callable[[Scope], Hashable] = client_ip,
        headers: str | None = "ietf",
        exempt: Iterable[str] = (),
        tokens: float = 1,
    ) -> None:
        self._app = _app(app)
        adecide = getattr(limiter, "adecide", None)
        if not callable(adecide):
            raise TypeError(f"limiter must have adecide(key=..., tokens=...), got {limiter!r}")
        self._adecide: Callable[..., Awaitable[Any]] = adecide
        if not callable(key):
            raise TypeError(f"key must be callable (scope -> key), got {key!r}")
        self._key = key
        if headers is not None and not isinstance(headers, str):
            raise TypeError(f"headers must be 'ietf', 'legacy' or None, got {headers!r}")
        if headers not in ("ietf", "legacy", None):
            raise ValueError(f"headers must be 'ietf', 'legacy' or None, got {headers!r}")
        self._mode = headers
        if isinstance(exempt, (str, bytes)) or not isinstance(exempt, Iterable):
            raise TypeError(f"exempt must be an iterable of paths, got {exempt!r}")
        paths = list(exempt)
        for path in paths:
            if not isinstance(path, str):
                raise TypeError(f"exempt must hold str paths, got {path!r}")
            if not path.startswith("/"):
                raise ValueError(f"exempt must hold paths starting with '/', got {path!r}")
        self._exempt = frozenset(paths)
        self._tokens = positive("tokens", tokens)
        self._quota = 0
        self._name = ""  # the policy's name as a structured-field String (ietf)
        self._policy: list[tuple[bytes, bytes]] = []
        if headers is not None:
            self._describe(limiter, headers)

    def _describe(self, limiter: Any, mode: str) -> None:
        """The figures the headers quote, from the limiter's settings, and the fixed field."""
        stats = getattr(limiter, "stats", None)
        rate, per = getattr(stats, "rate", None), getattr(stats, "per", None)
        if not isinstance(rate, (int, float)) or not isinstance(per, (int, float)):
            raise TypeError(
                f"headers={mode!r} needs a limiter whose .stats has rate and per, got {limiter!r}"
            )
        self._quota = math.floor(rate)
        if self._quota < 1:
            raise ValueError(
                f"headers={mode!r} needs a limiter of at least 1 request per window, got"
                f" rate={rate!r} per={per!r}"
            )
        if mode == "legacy":
            self._policy = [(b"x-ratelimit-limit", str(self._quota).encode())]
            return
        if per != math.floor(per):
            raise ValueError(
                f"headers='ietf' needs the limiter's per in whole seconds, got per={per!r}"
            )
        name = getattr(stats, "name", None) or "default"
        if not name.isascii() or not name.isprintable():
            raise ValueError(f"headers='ietf' needs a printable ASCII limiter name, got {name!r}")
        # A structured-field String: quotes and backslashes escaped.
        self._name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        policy = f"{self._name};q={self._quota};w={int(per)}"
        self._policy = [(b"ratelimit-policy", policy.encode())]

    def _fields(self, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
        """The headers of one response: the policy and what is left of it."""
        if self._mode == "legacy":
            return [
                *self._policy,
                (b"x-ratelimit-remaining", str(remaining).encode()),
                (b"x-ratelimit-reset", str(reset).encode()),
            ]
        field = f"{self._name};r={remaining};t={reset}"
        return [*self._policy, (b"ratelimit", field.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        made = await self._adecide(key=self._key(scope), tokens=self._tokens)
        mode = self._mode
        if not made.allowed:
            retry_after = retry_after_seconds(made.retry_after)
            fields: list[tuple[bytes, bytes]] = []
            if mode is not None:
                reset = math.ceil(made.reset_after) if retry_after is None else retry_after
                fields = self._fields(made.remaining, reset)
            problem = {
                "type": QUOTA_EXCEEDED,
                "title": "Request cannot be satisfied as assigned quota has been exceeded",
                "detail": "rate limit exceeded: try again after the Retry-After seconds",
            }
            await _refuse(send, 429, retry_after, problem, fields)
            return
        if mode is None:
            await self._app(scope, receive, send)
            return
        extra = self._fields(made.remaining, math.ceil(made.reset_after))

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self._app(scope, receive, send_with_fields)


# -- load shedding and deadlines -------------------------------------------------------------


class LoadSheddingMiddleware:
    """503 for the requests ``manager`` sheds at its current level.

    The request's criticality is the ``header``'s value — a ``Criticality``
    name, any case, ``-`` or ``_`` (``sheddable-plus``); absent or unknown:
    ``CRITICAL``, the default — and the app serves the request under it, so
    ``current_criticality()`` and the manager's ``admission`` see it too.
    """

    __slots__ = ("_app", "_header", "_manager")

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: DegradationManager,
        header: str = "x-request-criticality",
    ) -> None:
        self._app = _app(app)
        if not isinstance(manager, DegradationManager):
            raise TypeError(f"manager must be a DegradationManager, got {manager!r}")
        self._manager = manager
        self._header = _header_name("header", header)

    def _criticality(self, scope: Scope) -> Criticality:
        value = _header(scope, self._header)
        if value is None:
            return Criticality.CRITICAL
        name = value.decode("latin-1").strip().upper().replace("-", "_")
        return Criticality.__members__.get(name, Criticality.CRITICAL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        criticality = self._criticality(scope)
        try:
            self._manager.admit(criticality)
        except LoadShedError as shed:
            detail = f"load shed: {criticality.name} requests are not served at this level"
            await _refuse(send, 503, retry_after_seconds(shed.retry_after), _unavailable(detail))
            return
        with request_criticality(criticality):
            await self._app(scope, receive, send)


class DeadlineMiddleware:
    """Serve each request within the seconds its ``header`` gives (``Request-Timeout``).

    The value — seconds, decimals allowed — sets ``resilience.deadline()``
    for the app's handling of the request, so every retry, limiter or
    bulkhead wait and ``remaining()`` inside honours the caller's time. A
    value that is not a finite number >= 0 is ignored (no deadline).
    """

    __slots__ = ("_app", "_header")

    def __init__(self, app: ASGIApp, *, header: str = "request-timeout") -> None:
        self._app = _app(app)
        self._header = _header_name("header", header)

    def _seconds(self, scope: Scope) -> float | None:
        value = _header(scope, self._header)
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if 0.0 <= seconds < math.inf else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seconds = self._seconds(scope) if scope["type"] == "http" else None
        if seconds is None:
            await self._app(scope, receive, send)
            return
        with deadline(seconds):
            await self._app(scope, receive, send)


# -- permits held until the response is complete -----------------------------------------------


Settle: TypeAlias = Callable[[BaseException | None, int | None, bool], None]


async def _serve_holding(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, settle: Settle
) -> None:
    """Run ``app`` and call ``settle(error, status, complete)`` exactly once.

    ``complete`` True: the response's last chunk was sent (``error`` None) —
    called then, not when the app returns, so work the app does after its
    response (background tasks) holds nothing. Otherwise it is called when
    the app ends: with its exception, or None when it returned with its
    response unfinished (the client went away) or never started.
    """
    status: int | None = None
    settled = False

    async def watched(message: Message) -> None:
        nonlocal status, settled
        kind = message["type"]
        if kind == "http.response.start":
            status = int(message["status"])
        await send(message)
        last = kind == "http.response.pathsend" or (
            kind == "http.response.body" and not message.get("more_body", False)
        )
        if last and not settled:
            settled = True
            settle(None, status, True)

    try:
        await app(scope, receive, watched)
    except BaseException as error:
        if not settled:
            settled = True
            settle(error, status, False)
        raise
    if not settled:
        settle(None, status, False)


class ConcurrencyLimitMiddleware:
    """At most ``bulkhead``'s holders serve requests at once; 503 for the rest.

    A request takes a permit (waiting in the bulkhead's queue up to its
    ``max_wait`` and the request's deadline) and holds it until its response
    is complete — a streamed response until its last chunk — or the app
    fails, the client leaves, the request is cancelled.
    """

    __slots__ = ("_app", "_bulkhead")

    def __init__(self, app: ASGIApp, *, bulkhead: Any) -> None:
        self._app = _app(app)
        if not callable(getattr(bulkhead, "aacquire", None)) or not callable(
            getattr(bulkhead, "release", None)
        ):
            raise TypeError(f"bulkhead must have aacquire() and release(), got {bulkhead!r}")
        self._bulkhead = bulkhead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        bulkhead = self._bulkhead
        try:
            await bulkhead.aacquire()
        except BulkheadFullError as full:
            detail = "concurrency limit reached: too many requests in progress"
            await _refuse(send, 503, retry_after_seconds(full.retry_after), _unavailable(detail))
            return
        await _serve_holding(
            self._app, scope, receive, send, lambda error, status, complete: bulkhead.release()
        )


class ServerErrorStatus(Exception):
    """What a ``CircuitBreakerMiddleware``'s breaker is told of a 5xx response.

    The breaker classifies it like any exception: a failure under the
    default ``record=Exception``; ``ignore=ServerErrorStatus`` makes 5xx
    responses count as neither.
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class CircuitBreakerMiddleware:
    """503 while ``breaker`` refuses; the app's 5xx responses and exceptions are its failures.

    A response below 500 is a success. The breaker's permit is held until
    the response is complete; an exception is classified by the breaker
    (cancellation is no outcome); a response the client left unfinished is
    no outcome; an app that answered nothing (the server sends 500) failed.
    """

    __slots__ = ("_app", "_breaker")

    def __init__(self, app: ASGIApp, *, breaker: Policy) -> None:
        self._app = _app(app)
        if not isinstance(breaker, Policy):
            raise TypeError(f"breaker must be a CircuitBreaker, got {breaker!r}")
        self._breaker = breaker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        breaker = self._breaker
        try:
            # The protocol's first step (a with block's): the permit, or the refusal.
            token = breaker._enter(None, None)
        except CircuitOpenError as refused:
            await _refuse(
                send,
                503,
                retry_after_seconds(refused.retry_after),
                _unavailable("circuit open: the service is failing and is given time to recover"),
            )
            return

        def settle(error: BaseException | None, status: int | None, complete: bool) -> None:
            if error is None and (complete or status is None):
                # Finished, or never started (the server answers 500 for the app).
                status = 500 if status is None else status
                error = ServerErrorStatus(status) if status >= 500 else None
            elif error is None:
                error = asyncio.CancelledError()  # unfinished, the client gone: no outcome
            breaker._exit(token, error, None)

        await _serve_holding(self._app, scope, receive, send, settle)

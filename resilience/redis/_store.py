"""RedisStore: the connection to Redis that the shared policies decide through.

A store holds a sync client, an async client or both (plain or cluster),
the key prefix, the command timeout and what to do when Redis cannot
answer (``on_error``). Every round trip goes through the store's guard, a
``CircuitBreaker`` of this library: three failures in a row open it, and
while it is open a decision falls back at once instead of waiting out a
socket timeout; every ``reset_timeout`` (1 s) one call probes Redis again,
so recovery needs nobody.

With a plain client (``redis.Redis`` or ``redis.asyncio.Redis``, not a
cluster) the store sends EVALSHA itself (``_Lane``): the command packed
once per call from pieces packed once per script and key, written and read
on a connection the store keeps out of the client's pool between calls.
redis-py's own command path costs more than the server's work: about 25 us
of a 50 us decision here went to its dispatch and to the pool's checks on
every checkout, measured against the same script sent this way.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import monotonic
from types import TracebackType
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.cluster
import redis.exceptions
import redis.retry
from redis.backoff import NoBackoff

from .._core import _fork
from .._core._nocopy import NoCopy
from .._core._validate import positive, ratio
from .._policy import asyncio_only, logger
from ..breaker import CircuitBreaker, CircuitState
from ..errors import ResilienceError
from ._worker import stop_worker

__all__ = ["OUTAGES", "RedisStore", "RedisStoreStats", "Unreachable", "redis_probe"]

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

ON_ERROR: Final = ("allow", "deny", "local")

# What means "Redis cannot answer now", as opposed to an answer (a script
# error, a wrong reply) that says something is wrong with us. Connection
# refused and timeouts (redis-py's own, and the OS's), a replica that
# cannot write (READONLY), a cluster that is down or moving slots.
OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    OSError,
)

# The guard: three failures in a row open it; open, it lets one probe
# through a second later.
GUARD_FAILURES = 3
GUARD_RESET = 1.0


@dataclass(frozen=True)
class RedisStoreStats:
    """A snapshot of a store, counted in this process since it started (or forked).

    ``round_trips``: commands or scripts sent (a batch is one); ``errors``:
    those that found Redis unreachable; ``fallbacks``: decisions made by
    ``on_error`` instead of Redis (one per request of a batch, and every
    decision while the guard is open); ``guard``: the state of the guard.
    """

    process_id: str
    round_trips: int
    errors: int
    fallbacks: int
    guard: CircuitState


class Unreachable:
    """What a round trip gives when Redis could not answer: fall back.

    ``retry_after``: seconds until the guard lets a call try Redis again
    (0.0 when this very call found it down and the guard is still closed).
    """

    __slots__ = ("retry_after",)

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after


def _bulk(data: bytes) -> bytes:
    """``data`` as a RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(data), data)


class Script:
    """A Lua script by name, run by its SHA1 (EVALSHA) and loaded when the server lacks it."""

    __slots__ = ("evalsha", "load", "name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        # The RESP pieces the store's own path sends: EVALSHA and the SHA1
        # (the head of every run), and the whole SCRIPT LOAD command.
        self.evalsha = _bulk(b"EVALSHA") + _bulk(self.sha.encode())
        self.load = [b"*3\r\n" + _bulk(b"SCRIPT") + _bulk(b"LOAD") + _bulk(source.encode())]

    def __repr__(self) -> str:
        return f"<Script {self.name!r}>"


def _no_retries_sync() -> dict[str, Any]:
    """What a client the store builds is given: no retries of redis-py's own.

    ``redis.Redis(...)`` of redis-py 6 and later comes with a ``Retry`` of
    its own (in 8.x: 10 retries, jittered exponential backoff up to 1 s),
    which turns one outage into seconds per call (a pool built by
    ``from_url`` has none in 8.x; saying so keeps every version alike). So
    both clients are told: no retries (``Retry(NoBackoff(), 0)``), no extra
    error types to retry on (``retry_on_error=[]``). The guard is what
    retries here.
    ``retry_on_timeout`` keeps its default, False (deprecated in 6).
    """
    return {"retry": redis.retry.Retry(NoBackoff(), 0), "retry_on_error": []}


def _no_retries_async() -> dict[str, Any]:
    return {"retry": redis.asyncio.retry.Retry(NoBackoff(), 0), "retry_on_error": []}


# The store's own path (``_Lane``) keeps the packed head of a command (the
# script, its keys) per script and keys; this many at most, then it starts
# again, so a limiter keyed per client keeps bounded memory.
PACKED_HEADS: Final = 4096


def _takes_command_name(method: Callable[..., Any]) -> tuple[str, ...]:
    """What ``pool.get_connection`` must be given: redis-py 5 requires a command
    name, later versions take none (and warn when given one)."""
    parameter = inspect.signature(method).parameters.get("command_name")
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        return ("EVALSHA",)
    return ()


# The asyncio connection's check for pending data or a closed socket
# (``can_read_destructive`` in redis-py 5, ``can_read`` in later versions).
_ASYNC_CAN_READ: Final = (
    "can_read"
    if hasattr(redis.asyncio.connection.AbstractConnection, "can_read")
    else "can_read_destructive"
)


def _lane_pool(client: SyncClient | AsyncClient | None) -> Any:
    """The pool of a client the store may send EVALSHA to itself, or None.

    Only a plain client (a cluster routes by slot) whose command path adds
    nothing a script run needs: no single connection of its own (it has its
    own lock), RESP2 (RESP3 interleaves push messages, and maintenance
    notifications act on them), no client-side cache, no retries of its
    own (the README's advice; a client that has them keeps them: it goes
    through redis-py), no callback of its own on EVALSHA replies.
    """
    if not isinstance(client, redis.Redis | redis.asyncio.Redis):
        return None
    if client.connection is not None or getattr(client, "single_connection_client", False):
        return None
    pool = client.connection_pool
    settings = pool.connection_kwargs
    if settings.get("protocol") not in (None, 2, "2"):
        return None
    if getattr(pool, "cache", None) is not None:
        return None
    retry = settings.get("retry")
    if retry is not None and getattr(retry, "_retries", 0) != 0:
        return None
    if "EVALSHA" in client.response_callbacks:
        return None
    return pool


class _Lane:
    """The store's own path to a plain client's server: EVALSHA packed here, sent and
    read on a connection the store keeps between calls.

    A call takes an idle connection from ``idle`` or, when none is idle, a
    new one from the client's pool, and puts it back into ``idle`` when it
    ends, however it ends. ``list.pop`` and ``list.append`` are atomic, so
    threads (and tasks) share ``idle`` without a lock, and no two calls
    ever hold one connection. The pool's own checkout costs a lock, a
    poll of the socket and the pool's events: 9 us a call here, a third
    of a decision; the store pays only the poll (``can_read``: a reply
    left unread, or a socket the server closed while the connection was
    idle, and the connection is made again). So the store holds, out of
    the pool, as many connections as it has had calls at once; ``close``
    gives them back. After a fork the child drops the parent's (the
    store builds new lanes there).

    A connection that raised anything but an error reply (a timeout, a
    refused connection, an interrupt, a cancellation) is disconnected
    before it goes back: a reply still on its way must not be read as the
    answer to the next call. An error reply (NOSCRIPT, a script error,
    READONLY) is a whole answer: the connection stays as it is.
    """

    __slots__ = ("command_name", "encode", "heads", "idle", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.command_name = _takes_command_name(pool.get_connection)
        self.encode: Callable[[Any], bytes] = pool.get_encoder().encode
        self.heads: dict[tuple[str, ...], bytes] = {}
        self.idle: list[Any] = []

    def pack(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> list[bytes]:
        """EVALSHA of ``script`` with ``keys`` and ``args``, as the bytes to send (in a
        list: what ``send_packed_command`` writes, whatever the redis-py version).

        Arguments are encoded as redis-py encodes them (bytes as they are,
        numbers by ``repr``, str in the client's encoding).
        """
        encode = self.encode
        named = (script.sha, *keys)
        head = self.heads.get(named)
        if head is None:
            head = script.evalsha + _bulk(b"%d" % len(keys))
            head += b"".join(_bulk(encode(key)) for key in keys)
            if len(self.heads) >= PACKED_HEADS:
                self.heads.clear()
            self.heads[named] = head
        # EVALSHA, the SHA1, the number of keys, the keys, the arguments.
        parts = [b"*%d\r\n" % (3 + len(keys) + len(args)), head]
        for arg in args:
            data = arg if type(arg) is bytes else encode(arg)
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        return [b"".join(parts)]


class _SyncLane(_Lane):
    __slots__ = ()

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The reply of ``script``: raises what redis-py raises (error replies, outages)."""
        command = self.pack(script, keys, args)
        idle = self.idle
        try:
            connection = idle.pop()
        except IndexError:
            connection = self.pool.get_connection(*self.command_name)
        try:
            try:
                if connection.can_read():  # a reply nobody read: start again
                    connection.disconnect()
            except OUTAGES:  # closed by the server meanwhile, or by an error here
                connection.disconnect()  # the send connects again
            connection.send_packed_command(command, check_health=False)
            try:
                return connection.read_response()
            except redis.exceptions.NoScriptError:  # first use, or a flushed or new server
                connection.send_packed_command(script.load, check_health=False)
                connection.read_response()
                connection.send_packed_command(command, check_health=False)
                return connection.read_response()
        except redis.exceptions.ResponseError:
            raise  # an answer read whole
        except BaseException:
            connection.disconnect()
            raise
        finally:
            idle.append(connection)

    def close(self) -> None:
        """Give the idle connections back to the pool."""
        while self.idle:
            self.pool.release(self.idle.pop())


class _AsyncLane(_Lane):
    __slots__ = ()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``_SyncLane.run`` on the event loop; a cancelled call disconnects its connection."""
        command = self.pack(script, keys, args)
        idle = self.idle
        try:
            connection = idle.pop()
        except IndexError:
            connection = await self.pool.get_connection(*self.command_name)
        try:
            try:
                if await getattr(connection, _ASYNC_CAN_READ)():
                    await connection.disconnect(nowait=True)
            except OUTAGES:
                await connection.disconnect(nowait=True)
            await connection.send_packed_command(command, check_health=False)
            try:
                return await connection.read_response()
            except redis.exceptions.NoScriptError:
                await connection.send_packed_command(script.load, check_health=False)
                await connection.read_response()
                await connection.send_packed_command(command, check_health=False)
                return await connection.read_response()
        except redis.exceptions.ResponseError:
            raise
        except BaseException:
            # A cancelled read too. ``nowait``: the stream is closed without
            # waiting for the close to finish, so nothing suspends here for
            # a second cancellation to interrupt.
            await connection.disconnect(nowait=True)
            raise
        finally:
            idle.append(connection)

    async def aclose(self) -> None:
        """Give the idle connections back to the pool."""
        while self.idle:
            await self.pool.release(self.idle.pop())


class RedisStore(NoCopy):
    """Where the shared policies keep their state: one Redis (or Valkey), or a cluster.

    Build it with ``RedisStore.from_url(url, ...)``, which makes a sync and
    an async client with redis-py's own retries off and socket timeouts of
    ``timeout``; or give it the clients (``client=`` a ``redis.Redis`` or
    ``redis.cluster.RedisCluster``, ``async_client=`` their asyncio twins),
    used as they are — configure them the same way. Sync calls of the
    policies use the sync client, async calls the async one (an asyncio
    client of redis-py serves the event loop it first ran on).

    ``prefix`` starts every key. ``on_error`` says what a policy decides when
    Redis cannot answer: ``"allow"`` admits, ``"deny"`` refuses (with
    ``retry_after`` = the time until the guard tries Redis again),
    ``"local"`` (the default) lets an in-process twin of the policy decide,
    at ``local_share`` (in (0, 1]) of its limits. Policies built on the
    store follow the store's setting.

    ``close()`` / ``await aclose()`` (or ``with`` / ``async with``) close the
    clients the store built. A forked child makes its own clients (and gets
    its own ``process_id``) before its first call.
    """

    __slots__ = (
        "__weakref__",
        "_async",
        "_async_lane",
        "_built_from",
        "_counts",
        "_guard",
        "_lock",
        "_on_error",
        "_opened",
        "_outage",
        "_prefix",
        "_process_id",
        "_share",
        "_sync",
        "_sync_lane",
        "_timeout",
    )

    def __init__(
        self,
        *,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        prefix: str = "resilience",
        timeout: float = 0.05,
        on_error: str = "local",
        local_share: float = 1.0,
    ) -> None:
        if client is not None and not isinstance(client, SyncClient):
            raise TypeError(
                f"client must be a redis.Redis or redis.cluster.RedisCluster, got {client!r}"
            )
        if async_client is not None and not isinstance(async_client, AsyncClient):
            raise TypeError(
                "async_client must be a redis.asyncio.Redis or"
                f" redis.asyncio.cluster.RedisCluster, got {async_client!r}"
            )
        if client is None and async_client is None:
            raise TypeError("RedisStore needs client=, async_client= or both (or use from_url)")
        if not isinstance(prefix, str) or not prefix:
            raise TypeError(f"prefix must be a non-empty str, got {prefix!r}")
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must not contain '{{' or '}}' (hash tags), got {prefix!r}")
        if not isinstance(on_error, str):
            raise TypeError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self._timeout = positive("timeout", timeout)
        self._share = ratio("local_share", local_share)
        self._prefix = prefix
        self._on_error = on_error
        self._sync = client
        self._async = async_client
        self._sync_lane, self._async_lane = _lanes(client, async_client)
        self._built_from: str | None = None
        self._lock = _fork.lock()
        self._guard = _guard()
        self._opened = -math.inf  # when the guard last opened (monotonic seconds)
        self._guard.on_state_change(self._guard_moved)
        self._process_id = uuid.uuid4().hex
        self._counts = [0, 0, 0]  # round trips, errors, fallbacks
        self._outage = False  # an outage is under way: logged already
        _fork.register(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "resilience",
        timeout: float = 0.05,
        on_error: str = "local",
        local_share: float = 1.0,
    ) -> RedisStore:
        """A store with a sync and an async client for ``url`` (``redis://``, ``rediss://``,
        ``unix://``), both with socket timeouts of ``timeout`` and no retries of their own."""
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {url!r}")
        seconds = positive("timeout", timeout)
        store = cls(
            client=_sync_client(url, seconds),
            async_client=_async_client(url, seconds),
            prefix=prefix,
            timeout=seconds,
            on_error=on_error,
            local_share=local_share,
        )
        store._built_from = url
        return store

    # -- what the policies use ------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def timeout(self) -> float:
        """The command timeout, in seconds (the socket timeout of the clients it built)."""
        return self._timeout

    @property
    def on_error(self) -> str:
        return self._on_error

    @property
    def local_share(self) -> float:
        return self._share

    @property
    def process_id(self) -> str:
        """This process's id in the fleet (a new one after a fork)."""
        return self._process_id

    @property
    def client(self) -> SyncClient | None:
        return self._sync

    @property
    def async_client(self) -> AsyncClient | None:
        return self._async

    def key(self, kind: str, name: str, key: str | None, field: str) -> str:
        """``{<prefix>:v1:<kind>:<name>[:<key>]}:<field>``: one hash slot per policy and key.

        ``name`` and ``key`` are escaped (``%``, ``:``, ``{``, ``}``), so no
        name and key can spell another's, nor end the hash tag early.
        """
        tag = f"{self._prefix}:v1:{kind}:{_escape(name)}"
        if key is not None:
            tag = f"{tag}:{_escape(key)}"
        return f"{{{tag}}}:{field}"

    def run_sync(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], decisions: int = 1
    ) -> Any:
        """The reply of ``script`` run with the sync client, or ``Unreachable``.

        Through the guard: while it is open nothing is sent. ``decisions``:
        how many decisions fall back if Redis cannot answer.
        """
        client = self._sync
        if client is None:
            raise TypeError(f"{self!r} has no sync client: give client= (or use from_url)")
        guard = self._guard
        if not guard.allow():
            return self._fell_back(decisions)
        self._count(0)
        lane = self._sync_lane
        try:
            if lane is not None:
                reply = lane.run(script, keys, args)
            else:
                try:
                    reply = client.evalsha(script.sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:  # first use, or a flushed or new server
                    client.script_load(script.source)
                    reply = client.evalsha(script.sha, len(keys), *keys, *args)
        except BaseException as error:
            return self._settle_error(error, decisions)
        guard.record_success()
        self._answered()
        return reply

    async def run_async(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], decisions: int = 1
    ) -> Any:
        """``run_sync`` with the async client: the loop is never blocked."""
        running_loop()  # under Trio: a clear error, before anything is sent
        client = self._async
        if client is None:
            raise TypeError(
                f"{self!r} has no async client: give async_client= (or use from_url)"
            )
        guard = self._guard
        if not guard.allow():
            return self._fell_back(decisions)
        self._count(0)
        lane = self._async_lane
        try:
            if lane is not None:
                reply = await lane.run(script, keys, args)
            else:
                try:
                    reply = await client.evalsha(script.sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:
                    await client.script_load(script.source)
                    reply = await client.evalsha(script.sha, len(keys), *keys, *args)
        except BaseException as error:
            return self._settle_error(error, decisions)
        guard.record_success()
        self._answered()
        return reply

    def _settle_error(self, error: BaseException, decisions: int) -> Unreachable:
        """A round trip that raised: an outage falls back; anything else is raised.

        The guard's permit is answered (``allow()`` / ``record_*``, the
        breaker's two-step form: cheaper than its ``with`` block on every
        decision): an outage is a failure; an error reply (a script error) is
        Redis answering, a success; cancellation and interrupts are neither.
        """
        guard = self._guard
        if isinstance(error, OUTAGES):
            guard.record_failure()
            self._failed(error)
            return self._fell_back(decisions)
        if isinstance(error, Exception):
            guard.record_success()
        else:
            guard.release()
        raise error

    # -- outages -------------------------------------------------------------------

    def _count(self, index: int, n: int = 1) -> None:
        with self._lock:
            self._counts[index] += n

    def _failed(self, error: BaseException) -> None:
        """Redis did not answer: count it; the first error of an outage is logged."""
        with self._lock:
            self._counts[1] += 1
            first = not self._outage
            self._outage = True
        if first:
            logger.warning(
                "Redis unreachable (%s: %s): deciding with on_error=%r until it answers again",
                type(error).__name__,
                error,
                self._on_error,
            )

    def _answered(self) -> None:
        if self._outage:  # read without the lock: an outage's end is logged once either way
            with self._lock:
                ended, self._outage = self._outage, False
            if ended:
                logger.info("Redis answers again")

    def _fell_back(self, decisions: int) -> Unreachable:
        self._count(2, decisions)
        return Unreachable(self._reopens_in())

    def _reopens_in(self) -> float:
        """Seconds until the guard lets a call through: 0 unless it is open."""
        if self._guard.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened + GUARD_RESET - monotonic())

    def _guard_moved(self, guard: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        if new is CircuitState.OPEN:
            self._opened = monotonic()

    # -- reading ---------------------------------------------------------------------

    @property
    def stats(self) -> RedisStoreStats:
        with self._lock:
            round_trips, errors, fallbacks = self._counts
        return RedisStoreStats(
            process_id=self._process_id,
            round_trips=round_trips,
            errors=errors,
            fallbacks=fallbacks,
            guard=self._guard.state,
        )

    @property
    def guard(self) -> CircuitBreaker:
        """The breaker around Redis (read its state; forcing it open makes every call fall back)."""
        return self._guard

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self._prefix!r} on_error={self._on_error!r}>"

    # -- life cycle ------------------------------------------------------------------

    def close(self) -> None:
        """Give the sync connections the store holds back to the client's pool, and close
        the sync client this store built (clients given to it are the giver's).
        The store's worker (lease renewals) stops first."""
        stop_worker(self)
        if self._sync_lane is not None:
            self._sync_lane.close()
        if self._built_from is not None and self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        """``close()``, then the same for the async client."""
        self.close()
        if self._async_lane is not None:
            await self._async_lane.aclose()
        if self._built_from is not None and self._async is not None:
            await self._async.aclose()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _reset_in_child(self) -> None:
        """In a forked child: own connections, own id, own counts.

        The parent's sockets must not carry the child's commands (replies
        would go to whichever process reads first). Clients the store built
        are built again; a given sync client's pool notices the new pid and
        reconnects by itself; a given async client belongs to the parent's
        event loop, which the child cannot run.
        """
        self._process_id = uuid.uuid4().hex
        self._counts = [0, 0, 0]
        self._outage = False
        url = self._built_from
        if url is not None:
            self._sync = _sync_client(url, self._timeout)
            self._async = _async_client(url, self._timeout)
        # The parent's idle connections stay the parent's (a given sync
        # client's pool drops them too in the child).
        self._sync_lane, self._async_lane = _lanes(self._sync, self._async)


def _lanes(
    client: SyncClient | None, async_client: AsyncClient | None
) -> tuple[_SyncLane | None, _AsyncLane | None]:
    """The store's own paths to the clients that allow one (see ``_lane_pool``)."""
    pool = _lane_pool(client)
    async_pool = _lane_pool(async_client)
    return (
        None if pool is None else _SyncLane(pool),
        None if async_pool is None else _AsyncLane(async_pool),
    )


def _guard() -> CircuitBreaker:
    return CircuitBreaker("redis", failure_threshold=GUARD_FAILURES, reset_timeout=GUARD_RESET)


def _sync_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, **_no_retries_sync()
    )


def _async_client(url: str, timeout: float) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, **_no_retries_async()
    )


_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "{": "%7B", "}": "%7D"})


def _escape(part: str) -> str:
    return part.translate(_ESCAPES)


def running_loop() -> asyncio.AbstractEventLoop:
    """The running asyncio loop of the store's async client, or a RuntimeError
    that says so when this runs under Trio (the client needs asyncio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        asyncio_only("the Redis async client")
        raise


def check_reply(script: Script, reply: Any, length: int) -> list[int]:
    """``reply`` as a list of ``length`` integers, or a ResilienceError naming the script."""
    if (
        isinstance(reply, list)
        and len(reply) == length
        and all(type(item) is int for item in reply)
    ):
        return reply
    raise ResilienceError(
        f"Redis script {script.name!r} replied {reply!r}; expected {length} integers"
    )


def redis_probe(store: RedisStore) -> Callable[[], bool] | Callable[[], Awaitable[bool]]:
    """A health probe for ``HealthCheck``: Redis answers PING within the store's timeout.

    Sync when the store has a sync client, else async. It asks Redis
    itself, not through the guard: a health check wants the truth, and
    its failures are its own (``HealthCheck`` counts a probe that raises as
    a failure; give it ``timeout=store.timeout`` for clients the store did not build).
    """
    if not isinstance(store, RedisStore):
        raise TypeError(f"store must be a RedisStore, got {store!r}")
    if store.client is not None:

        def ping() -> bool:
            client = store.client
            assert client is not None  # a store keeps its kind of client after a fork
            return bool(client.ping())

        return ping

    async def aping() -> bool:
        client = store.async_client
        assert client is not None
        return bool(await client.ping())

    return aping


"""RedisBulkhead: at most ``limit`` holders across every process that uses the same Redis.

A holder is a lease in a sorted set, scored by when it runs out in the
server's time (``_bulkhead_scripts``): taking a permit drops the leases
that ran out, counts the rest and adds one, in one script; giving it back
removes the lease and announces the release on a channel. A live holder's
lease is renewed by the store's worker (every ``lease_ttl / 3``); a crashed
holder's runs out, so its permit comes back ``lease_ttl`` later.

Callers that find the bulkhead full may wait (up to ``max_queue`` of them
per process, each up to ``max_wait`` and the current deadline). A waiter
asks again when a release is announced — through one pub/sub subscription
per process (per event loop in async code) while anyone waits, or, where
the client cannot subscribe, by polling with a growing pause — and when the
earliest lease runs out; never in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

from .._core import _fork
from .._core._validate import count, non_negative, positive
from .._policy import Block, Policy, Wait, logger
from ..breaker import CircuitState
from ..bulkhead import Bulkhead, BulkheadStats
from ..errors import BulkheadFullError
from ..timeout import remaining as deadline_remaining
from ._bulkhead_scripts import ACQUIRE, ACQUIRE_FIELDS, RELEASE, RELEASE_FIELDS, RENEW
from ._store import OUTAGES, RedisStore, Script, Unreachable, check_reply, running_loop
from ._worker import Job, worker_for

__all__ = ["RedisBulkhead", "RedisBulkheadStats"]

P = ParamSpec("P")
R = TypeVar("R")

ACQUIRE_SCRIPT: Final = Script("bulkhead_acquire", ACQUIRE)
RELEASE_SCRIPT: Final = Script("bulkhead_release", RELEASE)
RENEW_SCRIPT: Final = Script("bulkhead_renew", RENEW)
KIND: Final = "bulkhead"
MICROSECONDS: Final = 1e6

# Without a subscription, a waiter looks again after POLL_FIRST seconds,
# then twice as long each time, at most POLL_MOST (and never later than the
# earliest lease runs out or its wait ends).
POLL_FIRST: Final = 0.01
POLL_MOST: Final = 1.0
# An async subscriber reads for this long at a time (a read of the socket,
# not a round trip), so redis-py versions whose blocking read would time out
# at the socket timeout behave alike.
LISTEN_SECONDS: Final = 1.0

# What a permit of this process is: a lease in Redis; one the renewal found
# gone (its holder goes on, the fleet no longer counts it); one of the local
# twin's; or one admitted by on_error="allow".
REDIS: Final = "redis"
LOST: Final = "lost"
LOCAL: Final = "local"
ALLOWED: Final = "allowed"


@dataclass(frozen=True)
class RedisBulkheadStats(BulkheadStats):
    """A snapshot of a ``RedisBulkhead``, as this process sees it.

    ``active`` and ``waiting`` are this process's holders and waiters (the
    fleet's holders are in Redis); ``acquired`` / ``rejected`` count this
    process's decisions. ``fallbacks``: decisions ``on_error`` made while
    Redis could not answer. ``lost``: leases the renewal found gone (Redis
    lost them, or they ran out during an outage longer than ``lease_ttl``).
    """

    fallbacks: int
    lost: int


class _SyncSignal:
    """Wakes this process's sync waiters when a release is announced.

    One subscription to the bulkhead's channel while anyone waits, read by
    one waiter at a time (no thread of its own): the reader wakes the others
    on each message, and hands the reading on when its own wait ends.
    ``notices`` counts the wake-ups; a waiter notes it before asking Redis,
    so a release that lands in between is never missed.
    """

    __slots__ = ("_cond", "_pubsub", "_reading", "_waiters", "notices")

    def __init__(self) -> None:
        self._cond = threading.Condition(_fork.lock())
        self.notices = 0
        self._waiters = 0
        self._pubsub: Any = None
        self._reading = False

    @property
    def subscribed(self) -> bool:
        return self._pubsub is not None

    def enter(self, store: RedisStore, channel: str) -> None:
        """A waiter arrives: the first subscribes (confirmed before anyone asks Redis)."""
        with self._cond:
            self._waiters += 1
            if self._waiters == 1:
                self._pubsub = _subscribe_sync(store, channel)

    def leave(self) -> None:
        """A waiter is done: the last one ends the subscription."""
        with self._cond:
            self._waiters -= 1
            pubsub = self._pubsub if self._waiters == 0 else None
            if pubsub is not None:
                self._pubsub = None
        if pubsub is not None:
            _close_quietly(pubsub.close)

    def bump(self) -> None:
        with self._cond:
            self.notices += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Until a notice after ``seen`` or ``timeout`` seconds, whichever is first."""
        end = monotonic() + timeout
        with self._cond:
            while self.notices == seen:
                left = end - monotonic()
                if left <= 0.0:
                    return
                pubsub = self._pubsub
                if pubsub is None or self._reading:
                    self._cond.wait(min(left, threading.TIMEOUT_MAX))
                    continue
                self._reading = True
                self._cond.release()
                try:
                    message = pubsub.get_message(timeout=min(left, LISTEN_SECONDS))
                except OUTAGES:
                    message = None
                    pubsub = None  # the subscription broke: waiters poll from now on
                finally:
                    self._cond.acquire()
                    self._reading = False
                if pubsub is None:
                    self._pubsub = None
                    self.notices += 1  # so every waiter looks again, polling
                elif message is not None and message.get("type") == "message":
                    self.notices += 1
                self._cond.notify_all()  # a notice, or the reading is up for grabs


class _AsyncSignal:
    """``_SyncSignal`` for the waiters of one event loop: a listener task reads the
    subscription while anyone waits; each notice resolves ``changed`` and replaces it."""

    __slots__ = ("_listener", "_loop", "_ready", "_waiters", "changed", "subscribed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.changed: asyncio.Future[None] = loop.create_future()
        self._waiters = 0
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self.subscribed = False

    async def enter(self, store: RedisStore, channel: str) -> None:
        """A waiter arrives: the first starts the listener; each waits (at most twice
        the store's timeout) for its subscription to be confirmed or to fail."""
        self._waiters += 1
        if self._listener is None:
            client = store.async_client
            pubsub = getattr(client, "pubsub", None)
            if pubsub is None or store.guard.state is CircuitState.OPEN:
                return  # no subscription: waiters poll
            self._ready = self._loop.create_future()
            self._listener = self._loop.create_task(self._listen(pubsub(), channel, self._ready))
        ready = self._ready
        if ready is not None and not ready.done():
            await asyncio.wait([ready], timeout=2 * store.timeout)

    def leave(self) -> None:
        self._waiters -= 1
        if self._waiters == 0 and self._listener is not None:
            self._listener.cancel()
            self._listener = None
            self._ready = None
            self.subscribed = False

    def bump(self) -> None:
        changed, self.changed = self.changed, self._loop.create_future()
        changed.set_result(None)

    def bump_threadsafe(self) -> None:
        """``bump`` from any thread (a release made elsewhere in this process)."""
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed meanwhile: nobody waits
                self._loop.call_soon_threadsafe(self.bump)

    async def wait(self, seen: asyncio.Future[None], timeout: float) -> None:
        """Until ``seen`` (a notice) or ``timeout`` seconds; cancellable, ``seen`` untouched."""
        if not seen.done():
            await asyncio.wait([seen], timeout=timeout if timeout < threading.TIMEOUT_MAX else None)

    async def _listen(self, pubsub: Any, channel: str, ready: asyncio.Future[None]) -> None:
        try:
            await pubsub.subscribe(channel)
            while True:  # the confirmation: from then on every release reaches us
                message = await pubsub.get_message(timeout=LISTEN_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    break
            self.subscribed = True
            ready.set_result(None)
            while True:
                message = await pubsub.get_message(timeout=LISTEN_SECONDS)
                if message is not None and message.get("type") == "message":
                    self.bump()
        except Exception as error:  # an outage, or a client that cannot subscribe: poll
            logger.debug("resilience: bulkhead subscription to %s ended: %r", channel, error)
        finally:
            if self._ready is ready:
                self.subscribed = False
            if not ready.done():
                ready.set_result(None)
            if self._waiters and self._ready is ready:
                self.bump()  # the waiters look again, polling from now on
            await _close_quietly_async(pubsub)


def _subscribe_sync(store: RedisStore, channel: str) -> Any:
    """A pub/sub of the sync client subscribed to ``channel`` (confirmed), or None
    (the client has none, the guard says Redis is down, or it failed: waiters poll)."""
    make = getattr(store.client, "pubsub", None)
    if make is None or store.guard.state is CircuitState.OPEN:
        return None
    pubsub = make()
    try:
        pubsub.subscribe(channel)
        end = monotonic() + 2 * store.timeout
        while (left := end - monotonic()) > 0.0:
            message = pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "subscribe":
                return pubsub
    except Exception as error:
        logger.debug("resilience: bulkhead subscription to %s failed: %r", channel, error)
    _close_quietly(pubsub.close)
    return None


def _close_quietly(close: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the connection is going away anyway
        close()


async def _close_quietly_async(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()


class RedisBulkhead(Block, Policy):
    """At most ``limit`` holders across every process sharing ``store``; up to
    ``max_queue`` more per process wait, each at most ``max_wait`` seconds.

    The forms and methods of ``Bulkhead``: the decorator, ``call`` /
    ``acall``, ``with`` / ``async with``, ``try_acquire``, ``acquire`` /
    ``aacquire`` (waiting up to ``timeout``, default ``max_wait``, and the
    current deadline), ``release`` and a place in a ``Pipeline``; a refusal
    is ``BulkheadFullError``. Sync calls use the store's sync client, async
    calls its async client (a release made inside a running event loop is
    sent by a task of that loop, so it never blocks it).

    Each permit is a lease that runs out ``lease_ttl`` seconds (server time)
    after it was taken or last renewed; the store's worker renews this
    process's leases every ``lease_ttl / 3``. A process that dies without
    releasing gives its permits back when they run out.

    When Redis cannot answer, the store's ``on_error`` decides: ``"allow"``
    admits, ``"deny"`` refuses (``retry_after``: until the store's guard
    tries Redis again), ``"local"`` takes a permit of an in-process
    ``Bulkhead`` of ``local_share`` of ``limit`` (rounded down, at least 1).
    """

    __slots__ = (
        "__weakref__",
        "_async_signals",
        "_channel",
        "_counts",
        "_held",
        "_ids",
        "_job",
        "_key",
        "_keys",
        "_limit",
        "_limit_arg",
        "_local",
        "_lock",
        "_max_queue",
        "_max_wait",
        "_name",
        "_signal",
        "_store",
        "_tasks",
        "_ttl",
        "_ttl_arg",
        "_waiting",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        limit: int,
        *,
        max_queue: int = 0,
        max_wait: float = 0.0,
        lease_ttl: float = 30.0,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {store!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        self._store = store
        self._name = name
        self._limit = count("limit", limit)
        self._max_queue = count("max_queue", max_queue, 0)
        self._max_wait = non_negative("max_wait", max_wait)
        self._ttl = positive("lease_ttl", lease_ttl)
        micros = math.ceil(self._ttl * MICROSECONDS)
        if micros < 1000:  # the set's TTL is in milliseconds; a lease lives at least one
            raise ValueError(f"lease_ttl must be at least 0.001 s, got {lease_ttl!r}")
        self._key = store.key(KIND, name, None, "holders")
        self._keys = (self._key, store.key(KIND, name, None, "given-up"))
        self._channel = store.key(KIND, name, None, "released")
        self._limit_arg = str(self._limit).encode()
        self._ttl_arg = str(micros).encode()
        self._lock = _fork.lock()
        # This process's permits, oldest first: lease id -> (what it is, the
        # event loop of an async holder, whose client can renew and release it).
        self._held: dict[str, tuple[str, asyncio.AbstractEventLoop | None]] = {}
        self._ids = itertools.count(1)
        self._waiting = 0
        self._counts = [0, 0, 0, 0]  # acquired, rejected, fallbacks, lost
        self._signal = _SyncSignal()
        # By event loop; a signal keeps its loop, so closed loops are dropped as new ones come.
        self._async_signals: dict[asyncio.AbstractEventLoop, _AsyncSignal] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # releases in flight (held until done)
        self._job: Job | None = None  # the renewal, registered with the first lease
        self._local: Bulkhead | None = None
        if store.on_error == "local":
            share = max(1, math.floor(self._limit * store.local_share))
            self._local = Bulkhead(
                share, max_queue=self._max_queue, max_wait=self._max_wait, name=name
            )
        _fork.register(self)

    def _reset_in_child(self) -> None:
        """In a forked child: the parent's leases, waiters, subscription and worker
        are the parent's (it releases and renews them); the child starts with none."""
        self._held = {}
        self._waiting = 0
        self._counts = [0, 0, 0, 0]
        self._signal = _SyncSignal()  # the parent's socket is never read here
        self._async_signals = {}
        self._tasks = set()
        self._job = None

    # -- bookkeeping ---------------------------------------------------------------------

    def _count(self, index: int, n: int = 1) -> None:
        with self._lock:
            self._counts[index] += n

    def _new_id(self) -> str:
        """A lease id no other process and no other permit of this one uses."""
        return f"{self._store.process_id}:{next(self._ids)}"

    def _wait_limit(self, timeout: float | None) -> float:
        """How long a caller may wait: ``timeout`` (default ``max_wait``), within the deadline."""
        wait = self._max_wait if timeout is None else non_negative("timeout", timeout)
        return min(wait, deadline_remaining())

    def _enqueue(self, limit: float) -> bool:
        """Take a place among this process's waiters, if a wait is allowed and one is free."""
        if limit <= 0.0:
            return False
        with self._lock:
            if self._waiting >= self._max_queue:
                return False
            self._waiting += 1
            return True

    def _dequeue(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _granted(self, lease: str, kind: str, loop: asyncio.AbstractEventLoop | None) -> str:
        """Record a permit of this process; the first lease in Redis (or the first since
        the worker stopped) registers the renewal with the store's worker."""
        with self._lock:
            self._held[lease] = (kind, loop)
            self._counts[0] += 1
            job = self._job
        if kind == REDIS and (job is None or not job.active):
            renewal: Job | None = worker_for(self._store).every(self._ttl / 3.0, self._renew)
            with self._lock:
                if self._job is job:
                    self._job = renewal
                    renewal = None
            if renewal is not None:  # another thread registered one meanwhile
                renewal.cancel()
        return lease

    def _rejected(self, retry_after: float | None = None) -> BulkheadFullError:
        self._count(1)
        return BulkheadFullError(
            self._name, self._limit, self._max_queue, retry_after=retry_after
        )

    # -- the scripts ---------------------------------------------------------------------

    def _acquire_args(self, lease: str) -> tuple[bytes, bytes, str]:
        return (self._limit_arg, self._ttl_arg, lease)

    def _answer(self, reply: Any) -> tuple[bool, float] | Unreachable:
        """Whether the lease was taken, and the seconds until the earliest lease runs out."""
        if isinstance(reply, Unreachable):
            return reply
        allowed, _, next_expiry = check_reply(ACQUIRE_SCRIPT, reply, ACQUIRE_FIELDS)
        return allowed == 1, math.inf if next_expiry < 0 else next_expiry / MICROSECONDS

    def _ask_sync(self, lease: str) -> tuple[bool, float] | Unreachable:
        try:
            reply = self._store.run_sync(ACQUIRE_SCRIPT, self._keys, self._acquire_args(lease))
        except BaseException as error:
            if not isinstance(error, Exception):
                self._forget(lease, None)  # interrupted: the script may have run
            raise
        return self._answer(reply)

    async def _ask_async(self, lease: str) -> tuple[bool, float] | Unreachable:
        try:
            args = self._acquire_args(lease)
            reply = await self._store.run_async(ACQUIRE_SCRIPT, self._keys, args)
        except BaseException as error:
            if not isinstance(error, Exception):
                self._forget(lease, asyncio.get_running_loop())  # cancelled mid-round trip
            raise
        return self._answer(reply)

    def _released(self, reply: Any) -> None:
        """After a release's round trip: wake this process's waiters (the channel wakes
        the others, and these too when they are subscribed)."""
        if not isinstance(reply, Unreachable):
            check_reply(RELEASE_SCRIPT, reply, RELEASE_FIELDS)
        self._signal.bump()
        for signal in list(self._async_signals.values()):
            signal.bump_threadsafe()

    def _release_args(self, lease: str) -> tuple[str, str, bytes]:
        return (lease, self._channel, self._ttl_arg)

    def _release_sync(self, lease: str) -> None:
        self._released(self._store.run_sync(RELEASE_SCRIPT, self._keys, self._release_args(lease)))

    async def _release_async(self, lease: str) -> None:
        try:
            args = self._release_args(lease)
            reply = await self._store.run_async(RELEASE_SCRIPT, self._keys, args)
            self._released(reply)
        except Exception:  # in a task of its own: nobody else would see it
            logger.exception("resilience: %r could not release lease %s", self, lease)

    async def _landed(self) -> asyncio.AbstractEventLoop:
        """Wait for the releases this event loop has in flight (never cancelling them);
        the loop."""
        loop = running_loop()
        flying = [task for task in self._tasks if task.get_loop() is loop]
        if flying:
            await asyncio.wait(flying)
        return loop

    def _forget(self, lease: str, loop: asyncio.AbstractEventLoop | None) -> None:
        """Remove ``lease`` from Redis: in a task of the running loop when there is one
        (never blocking it), else with the sync client, else in the holder's loop.
        With none of them it runs out after ``lease_ttl``."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        store = self._store
        if running is not None and store.async_client is not None:
            task = running.create_task(self._release_async(lease))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif store.client is not None:
            self._release_sync(lease)
        elif loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._release_async(lease), loop)

    def _renew(self) -> None:
        """The worker's job: renew every lease this process holds, in one round trip
        (one per event loop when the store has only an async client)."""
        with self._lock:
            leases = [(lease, loop) for lease, (kind, loop) in self._held.items() if kind == REDIS]
        if not leases:
            return
        if self._store.client is not None:
            ids = [lease for lease, _ in leases]
            reply = self._store.run_sync(RENEW_SCRIPT, (self._key,), self._renew_args(ids))
            self._renewed(ids, reply)
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[str]] = {}
        for lease, loop in leases:
            if loop is not None and not loop.is_closed():
                by_loop.setdefault(loop, []).append(lease)
        for loop, ids in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed: its leases run out
                asyncio.run_coroutine_threadsafe(self._renew_async(ids), loop)

    def _renew_args(self, ids: list[str]) -> tuple[Any, ...]:
        return (self._ttl_arg, *ids)

    async def _renew_async(self, ids: list[str]) -> None:
        reply = await self._store.run_async(RENEW_SCRIPT, (self._key,), self._renew_args(ids))
        self._renewed(ids, reply)

    def _renewed(self, ids: list[str], reply: Any) -> None:
        """Count and mark the leases Redis no longer had (still held here, so not
        released meanwhile): they are renewed no more."""
        if isinstance(reply, Unreachable):
            return  # the next turn tries again; a lease may run out meanwhile
        flags = check_reply(RENEW_SCRIPT, reply, len(ids))
        with self._lock:
            for lease, renewed in zip(ids, flags, strict=True):
                entry = self._held.get(lease)
                if not renewed and entry is not None and entry[0] == REDIS:
                    self._held[lease] = (LOST, entry[1])
                    self._counts[3] += 1

    # -- on_error ----------------------------------------------------------------------

    def _fallback_kind(self, down: Unreachable) -> str:
        """``on_error`` for one decision: ALLOWED, LOCAL (take the twin's permit) or a refusal."""
        self._count(2)
        mode = self._store.on_error
        if mode == "allow":
            return ALLOWED
        if mode == "deny":
            raise self._rejected(down.retry_after)
        return LOCAL

    def _twin(self) -> Bulkhead:
        local = self._local
        if local is None:  # the store's on_error is fixed: "local" built it
            raise AssertionError("on_error='local' without a local twin")
        return local

    def _fallback_sync(self, down: Unreachable, wait: float) -> str:
        if self._fallback_kind(down) == LOCAL:
            try:
                self._twin().acquire(max(0.0, wait))
            except BulkheadFullError:
                self._count(1)
                raise
            return self._granted(self._new_id(), LOCAL, None)
        return self._granted(self._new_id(), ALLOWED, None)

    async def _fallback_async(self, down: Unreachable, wait: float) -> str:
        if self._fallback_kind(down) == LOCAL:
            try:
                await self._twin().aacquire(max(0.0, wait))
            except BulkheadFullError:
                self._count(1)
                raise
            return self._granted(self._new_id(), LOCAL, None)
        return self._granted(self._new_id(), ALLOWED, None)

    # -- taking a permit, sync and async -----------------------------------------------------

    def _take_sync(self, timeout: float | None) -> str:
        """A permit (its lease id), waiting up to ``timeout``; or BulkheadFullError."""
        limit = self._wait_limit(timeout)
        end = monotonic() + limit
        lease = self._new_id()  # one id for every attempt: a lost reply never takes two
        queued = self._enqueue(limit)
        signal = self._signal
        try:
            if queued:
                signal.enter(self._store, self._channel)
            pause = POLL_FIRST
            while True:
                seen = signal.notices
                answer = self._ask_sync(lease)
                if isinstance(answer, Unreachable):
                    return self._fallback_sync(answer, end - monotonic() if queued else 0.0)
                allowed, next_expiry = answer
                if allowed:
                    return self._granted(lease, REDIS, None)
                left = end - monotonic()
                if not queued or left <= 0.0:
                    raise self._rejected()
                wake = min(left, next_expiry)
                if not signal.subscribed:
                    wake, pause = min(wake, pause), min(2.0 * pause, POLL_MOST)
                signal.wait(seen, wake)
        finally:
            if queued:
                signal.leave()
                self._dequeue()

    def _async_signal(self) -> _AsyncSignal:
        loop = running_loop()
        signals = self._async_signals
        signal = signals.get(loop)
        if signal is None:
            for closed in [other for other in signals if other.is_closed()]:
                del signals[closed]
            signal = signals[loop] = _AsyncSignal(loop)
        return signal

    async def _take_async(self, timeout: float | None) -> str:
        """``_take_sync`` with the async client; a cancelled waiter takes nothing."""
        limit = self._wait_limit(timeout)
        end = monotonic() + limit
        lease = self._new_id()
        queued = self._enqueue(limit)
        signal = self._async_signal()
        try:
            # This loop's releases in flight land first: an acquisition made
            # after a release never finds that permit still taken.
            loop = await self._landed()
            if queued:
                await signal.enter(self._store, self._channel)
            pause = POLL_FIRST
            while True:
                seen = signal.changed
                answer = await self._ask_async(lease)
                if isinstance(answer, Unreachable):
                    return await self._fallback_async(
                        answer, end - monotonic() if queued else 0.0
                    )
                allowed, next_expiry = answer
                if allowed:
                    return self._granted(lease, REDIS, loop)
                left = end - monotonic()
                if not queued or left <= 0.0:
                    raise self._rejected()
                wake = min(left, next_expiry)
                if not signal.subscribed:
                    wake, pause = min(wake, pause), min(2.0 * pause, POLL_MOST)
                await signal.wait(seen, wake)
        finally:
            if queued:
                signal.leave()
                self._dequeue()

    # -- the public methods -------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a permit if one is free now (one round trip); never waits."""
        try:
            self._take_sync(0.0)
        except BulkheadFullError:
            return False
        return True

    def acquire(self, timeout: float | None = None) -> None:
        """Take a permit, waiting up to ``timeout`` (default ``max_wait``) for one."""
        self._take_sync(timeout)

    async def aacquire(self, timeout: float | None = None) -> None:
        """Take a permit, awaiting one up to ``timeout`` (default ``max_wait``)."""
        await self._take_async(timeout)

    def release(self) -> None:
        """Give back a permit of this process (the latest taken); RuntimeError if none is held."""
        with self._lock:
            if not self._held:
                raise RuntimeError("release() called with no permit held")
            lease = next(reversed(self._held))
        self._give_back(lease)

    def _give_back(self, lease: str) -> None:
        with self._lock:
            entry = self._held.pop(lease, None)
        if entry is None:
            return  # held by the parent of this forked child: the parent gives it back
        kind, loop = entry
        if kind == LOCAL:
            self._twin().release()
        elif kind == REDIS:
            self._forget(lease, loop)

    # -- the protocol ----------------------------------------------------------------------

    # In a running loop a permit goes back through a task of that loop (the
    # protocol's exit cannot await): the async forms wait for it to land, so
    # the permit is back in Redis when the call or the block is over.

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)`` holding a permit; it is back when this returns."""
        try:
            return await super().acall(fn, *args, **kwargs)
        finally:
            await self._landed()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return await super().__aexit__(exc_type, exc, tb)
        finally:
            await self._landed()

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        return _Admit(self)

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> None:
        self._give_back(token)

    # -- reading -------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def lease_ttl(self) -> float:
        return self._ttl

    @property
    def store(self) -> RedisStore:
        return self._store

    @property
    def active(self) -> int:
        """Permits this process holds now."""
        return len(self._held)

    @property
    def waiting(self) -> int:
        """Callers of this process waiting now."""
        return self._waiting

    @property
    def stats(self) -> RedisBulkheadStats:
        with self._lock:
            acquired, rejected, fallbacks, lost = self._counts
            active, waiting = len(self._held), self._waiting
        return RedisBulkheadStats(
            name=self._name,
            max_concurrent=self._limit,
            max_queue=self._max_queue,
            active=active,
            waiting=waiting,
            acquired=acquired,
            rejected=rejected,
            fallbacks=fallbacks,
            lost=lost,
        )

    def __repr__(self) -> str:
        return (
            f"<RedisBulkhead name={self._name!r} limit={self._limit}"
            f" max_queue={self._max_queue} lease_ttl={self._ttl!r}>"
        )


class _Admit(Wait):
    """A call's entry: take a permit (sync or async client, waiting as ``acquire``
    does); ``done()`` gives its lease id to ``_exit``."""

    __slots__ = ("_bulkhead", "_lease")

    def __init__(self, bulkhead: RedisBulkhead) -> None:
        self._bulkhead = bulkhead
        self._lease: str | None = None

    def wait_sync(self) -> None:
        self._lease = self._bulkhead._take_sync(None)

    async def wait_async(self) -> None:
        self._lease = await self._bulkhead._take_async(None)

    def done(self) -> str | None:
        return self._lease


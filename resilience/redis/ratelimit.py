"""RedisRateLimiter: one rate limit shared by every process that uses the same Redis.

GCRA in one Lua script (``_scripts.GCRA``) on the server's clock: each
decision — or each batch of concurrent async decisions for one bucket — is
one round trip. ``key=`` gives each client or tenant a bucket of its own,
kept only in Redis. ``lease=k`` trades exactness for round trips: a process
takes up to ``k`` tokens at once and spends them locally, forfeiting what it
has not spent after ``lease_ttl`` seconds; the fleet still never admits more
than the shared limit.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Final

from .. import _core
from .._core import _fork
from .._core._validate import count, non_negative, non_negative_finite, positive
from .._policy import (
    Block,
    Policy,
    Wait,
    check_callable,
    sleep_async,
    sleep_sync,
)
from ..errors import RateLimitExceeded
from ..ratelimit import (
    RateDecision,
    RateLimiter,
    RateLimiterStats,
    check_burst,
    rate_and_per,
    tokens_per_second,
)
from ..timeout import remaining as deadline_remaining
from ._scripts import GCRA, GCRA_FIELDS
from ._store import RedisStore, Script, Unreachable, check_reply, running_loop

__all__ = ["KeyedRedisRateLimiter", "RedisRateLimiter"]

SCRIPT: Final = Script("gcra", GCRA)
KIND: Final = "ratelimit"
MICROSECONDS: Final = 1e6
LONGEST_WAIT: Final = 1e9  # seconds

# Buckets of keys decided locally during an outage (on_error="local"): the
# most recently used are kept, so memory stays bounded whatever the keys.
LOCAL_KEYS: Final = 1024


def _still() -> float:
    """The clock of a lease's bucket: time stands still, so it never refills."""
    return 0.0


# One decision as the script gave it: allowed, whole tokens granted,
# remaining, wait (or retry after; inf: never), reset after — seconds.
Reply = tuple[bool, int, int, float, float]
# A request as the script reads it: least, most, max_wait (microseconds),
# each encoded as the server will read it (redis-py sends bytes unchanged).
Request = tuple[bytes, bytes, bytes]
# A decision and the wait before its tokens may be used (a reservation).
Decided = tuple[RateDecision, float]


@dataclass(slots=True)
class _Batches:
    """The async decisions of one event loop, per Redis key: those waiting to
    be sent, and which keys have a batch in flight."""

    pending: dict[str, list[tuple[Request, asyncio.Future[Any]]]] = field(
        default_factory=dict
    )
    busy: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _arg(value: float) -> bytes:
    """A number as a script argument: ``repr`` round-trips a float exactly, as
    Lua's ``tonumber`` reads it."""
    return repr(float(value)).encode()


ONE_NOW: Final = (b"1", b"1", b"0")


def _now(outcome: Decided | RateLimiter) -> RateDecision:
    """The decision of a call that does not wait (so never the local twin itself)."""
    if isinstance(outcome, RateLimiter):
        raise AssertionError("a decision without a wait got the local twin to wait on")
    return outcome[0]


class RedisRateLimiter(Block, Policy):
    """``rate`` operations per ``per`` seconds, bursting to ``burst``, across every process.

    The forms and methods of ``RateLimiter``: ``try_acquire``, ``acquire`` /
    ``aacquire`` (waiting up to ``timeout``, default ``max_wait``, and the
    current deadline, then ``RateLimitExceeded``), ``decide`` / ``adecide``,
    the decorator, ``call`` / ``acall``, ``with`` / ``async with``, a place
    in a ``Pipeline``; each call or block takes one token. ``key=`` on the
    methods, or ``keyed(key)`` for the other forms, gives each key its own
    bucket of the same shape.

    A wait is a reservation on the server: the tokens are taken at once for
    a moment up to the wait ahead, and the caller sleeps until then (a
    caller interrupted while asleep forfeits them: the fleet under-admits,
    never over-admits). Sync calls use the store's sync client, async calls
    its async client; concurrent async decisions on one bucket share round
    trips (what arrives while a batch is in flight goes as the next batch).

    ``lease=k`` (1 <= k <= burst, unkeyed only): a process takes up to ``k``
    tokens in one round trip and spends them locally (a compiled
    ``TokenBucket`` that does not refill); tokens left after ``lease_ttl``
    seconds are forfeited. A decision spent from the lease reports as
    ``remaining`` the tokens left in this process's lease. When Redis cannot
    answer, the store's ``on_error`` decides (see ``RedisStore``).
    """

    __slots__ = (
        "__weakref__",
        "_batches",
        "_burst",
        "_counts",
        "_head",
        "_last",
        "_lease",
        "_lease_fetches",
        "_lease_lock",
        "_lease_size",
        "_lease_ttl",
        "_local",
        "_local_keys",
        "_lock",
        "_max_wait",
        "_name",
        "_per",
        "_rate",
        "_sleep",
        "_store",
        "_title",
        "_unkeyed",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        rate: float | str,
        *,
        per: float | None = None,
        burst: float | None = None,
        max_wait: float = 0.0,
        lease: int | None = None,
        lease_ttl: float = 1.0,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {store!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        self._store = store
        self._name = name
        self._title = name  # the name, known to be a str
        self._unkeyed = store.key(KIND, name, None, "tat")
        self._rate, self._per = rate_and_per(rate, per)
        self._burst = check_burst(burst, self._rate)
        per_second = tokens_per_second("rate", self._rate, self._per)
        self._max_wait = non_negative("max_wait", max_wait)
        self._lease_ttl = positive("lease_ttl", lease_ttl)
        if lease is not None:
            lease = count("lease", lease)
            if lease > self._burst:
                raise ValueError(f"lease must be <= burst ({self._burst!r}), got {lease!r}")
        self._lease_size = lease
        self._sleep = check_callable("sleep", sleep)
        # What every request sends first: microseconds per token, the burst.
        self._head = (_arg(MICROSECONDS / per_second), _arg(self._burst))
        self._lock = _fork.lock()
        self._lease_lock = _fork.lock()  # one sync lease fetch at a time
        # Allowed, rejected: the core's counters (a C increment on the compiled twin).
        self._counts = _core.SELECTED.Counters(2)
        self._last: RateDecision | None = None  # the latest decision of this process
        # The lease being spent, and when it is forfeited (monotonic seconds).
        self._lease: tuple[Any, float] = (self._lease_bucket(1.0, 0.0), -math.inf)
        self._lease_fetches: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Future[None]
        ] = weakref.WeakKeyDictionary()
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = (
            weakref.WeakKeyDictionary()
        )
        self._local: RateLimiter | None = None
        self._local_keys: OrderedDict[str, RateLimiter] = OrderedDict()
        if store.on_error == "local":
            self._local = self._local_twin()
        _fork.register(self)

    def _reset_in_child(self) -> None:
        """In a forked child: the parent's lease is the parent's (spending it here too
        would admit its tokens twice), and its event loops and batches are not ours."""
        self._lease = (self._lease_bucket(1.0, 0.0), -math.inf)
        self._lease_fetches = weakref.WeakKeyDictionary()
        self._batches = weakref.WeakKeyDictionary()
        self._counts = _core.SELECTED.Counters(2)

    # -- checks --------------------------------------------------------------------

    def _redis_key(self, key: str | None) -> str:
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str or None, got {key!r}")
        if key is None:
            return self._unkeyed
        return self._store.key(KIND, self._title, key, "tat")

    def _checked(self, tokens: float, key: str | None, timeout: float | None) -> float:
        """The wait allowed (seconds); raises on a bad ``tokens`` / ``timeout``."""
        non_negative_finite("tokens", tokens)
        if key is not None and self._lease_size is not None:
            raise ValueError(
                f"key must be None for a limiter with a lease (lease={self._lease_size!r});"
                f" got key={key!r}"
            )
        wait = self._max_wait if timeout is None else non_negative("timeout", timeout)
        return min(wait, deadline_remaining()) if wait > 0.0 else 0.0

    def _leases(self, tokens: float, key: str | None) -> bool:
        """Whether this request goes through the lease (it can: no key, at most ``lease``)."""
        size = self._lease_size
        return size is not None and key is None and tokens <= size

    # -- one round trip ---------------------------------------------------------------

    def _request(self, tokens: float, most: float, wait: float) -> Request:
        if tokens == 1 and most == 1 and wait == 0.0:
            return ONE_NOW  # the usual request, encoded once
        # Lua reads no infinity: a wait without limit is one of ~32 years.
        return (_arg(tokens), _arg(most), _arg(min(wait, LONGEST_WAIT) * MICROSECONDS))

    def _replies(self, reply: Any, n: int) -> list[Reply]:
        values = check_reply(SCRIPT, reply, GCRA_FIELDS * n)
        replies = []
        for i in range(0, len(values), GCRA_FIELDS):
            allowed, granted, left, wait, reset = values[i : i + GCRA_FIELDS]
            seconds = math.inf if wait < 0 else wait / MICROSECONDS
            replies.append((allowed == 1, granted, left, seconds, reset / MICROSECONDS))
        return replies

    def _ask_sync(self, key: str | None, request: Request) -> Reply | Unreachable:
        redis_key = self._redis_key(key)
        reply = self._store.run_sync(SCRIPT, (redis_key,), (*self._head, *request))
        if isinstance(reply, Unreachable):
            return reply
        return self._replies(reply, 1)[0]

    async def _ask_async(self, key: str | None, request: Request) -> Reply | Unreachable:
        """One decision, sent with whatever else is asked of this bucket meanwhile."""
        redis_key = self._redis_key(key)
        loop = running_loop()
        batches = self._batches.get(loop)
        if batches is None:
            batches = self._batches[loop] = _Batches()
        future: asyncio.Future[Reply | Unreachable] = loop.create_future()
        batches.pending.setdefault(redis_key, []).append((request, future))
        if redis_key not in batches.busy:
            batches.busy.add(redis_key)
            task = loop.create_task(self._send(batches, redis_key))
            batches.tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(batches.tasks.discard)
        return await future

    async def _send(self, batches: _Batches, redis_key: str) -> None:
        """Send the bucket's pending decisions, batch after batch, until none are left.

        No timer: a batch is what arrived while the one before was in flight.
        """
        try:
            while batch := batches.pending.pop(redis_key, None):
                args: list[bytes] = [*self._head]
                for request, _ in batch:
                    args.extend(request)
                try:
                    reply = await self._store.run_async(
                        SCRIPT, (redis_key,), args, decisions=len(batch)
                    )
                    replies: Sequence[Reply | Unreachable] = (
                        [reply] * len(batch)
                        if isinstance(reply, Unreachable)
                        else self._replies(reply, len(batch))
                    )
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except BaseException as error:  # every caller of the batch sees it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise  # an interrupt ends the sender (``finally`` below)
                    continue
                for (_, future), answer in zip(batch, replies, strict=True):
                    if not future.done():  # its caller may have been cancelled
                        future.set_result(answer)
        finally:
            batches.busy.discard(redis_key)
            for _, future in batches.pending.pop(redis_key, []):  # only if cancelled
                future.cancel()

    # -- decisions ----------------------------------------------------------------------

    def _decided(self, answer: Reply) -> Decided:
        """The decision a reply makes, and the wait before its tokens may be used."""
        allowed, _, left, wait, reset = answer
        made = RateDecision(allowed, self._burst, left, 0.0 if allowed else wait, reset)
        self._count(made)
        return made, (wait if allowed else 0.0)

    def _count(self, made: RateDecision) -> None:
        self._last = made  # one reference, replaced whole
        self._tally(made.allowed)

    def _tally(self, allowed: bool) -> None:
        self._counts.add(0 if allowed else 1)

    def _fallback(
        self, tokens: float, key: str | None, down: Unreachable, wait: float
    ) -> Decided | RateLimiter:
        """What ``on_error`` decides while Redis cannot answer.

        ``"local"`` with a wait allowed gives the local twin itself: the
        caller acquires from it (its reservations, its sleep).
        """
        mode = self._store.on_error
        if mode == "local":
            local = self._local_for(key)
            if wait > 0.0:
                return local
            made = local.decide(tokens)
        elif mode == "allow":
            left = max(0, math.floor(self._burst - tokens))
            made = RateDecision(True, self._burst, left, 0.0, 0.0)
        else:
            made = RateDecision(False, self._burst, 0, down.retry_after, down.retry_after)
        self._count(made)
        return made, 0.0

    def _local_twin(self) -> RateLimiter:
        """The in-process limiter that decides for one bucket during an outage:
        ``local_share`` of the rate and of the burst, rounded down, at least 1."""
        share = self._store.local_share
        rate = max(1.0, math.floor(self._rate * share)) if self._rate >= 1.0 else self._rate * share
        burst = max(1.0, math.floor(self._burst * share))
        return RateLimiter(rate, per=self._per, burst=burst, name=self._name, sleep=self._sleep)

    def _local_for(self, key: str | None) -> RateLimiter:
        if key is None:
            local = self._local
            if local is None:  # the store's on_error is fixed: "local" built it
                raise AssertionError("on_error='local' without a local twin")
            return local
        with self._lock:
            keys = self._local_keys
            local = keys.get(key)
            if local is None:
                local = keys[key] = self._local_twin()
                if len(keys) > LOCAL_KEYS:
                    keys.popitem(last=False)
            else:
                keys.move_to_end(key)
            return local

    # -- the lease ---------------------------------------------------------------------

    def _lease_bucket(self, tokens: float, left: float) -> Any:
        """A bucket holding ``left`` of a lease of ``tokens`` that never refills.

        The core takes no rate of 0; its clock standing still does the same
        (every reading, and every ``now=0.0`` passed, is the moment it was
        made), so the rate given is never applied.
        """
        return _core.SELECTED.TokenBucket(1.0, tokens, tokens=left, clock=_still)

    def _spend(self, tokens: float) -> RateDecision | None:
        """``tokens`` from the lease, if it holds them and has not expired; else None."""
        bucket, expires = self._lease
        if monotonic() >= expires or not bucket.try_acquire(tokens, 0.0):
            return None
        last = self._last
        made = RateDecision(
            True,
            self._burst,
            math.floor(bucket.tokens_at(0.0)),
            0.0,
            0.0 if last is None else last.reset_after,
        )
        self._count(made)
        return made

    def _leased(self, tokens: float, answer: Reply, started: float) -> Decided:
        """A lease reply: keep what this request does not spend for later ones."""
        allowed, granted, _, wait, _ = answer
        if allowed and wait == 0.0 and granted > tokens:
            # A reservation (wait > 0) is exactly the tokens asked: nothing is left to keep.
            self._lease = (
                self._lease_bucket(granted, granted - tokens),
                started + self._lease_ttl,
            )
        return self._decided(answer)

    def _lease_sync(self, tokens: float, wait: float) -> Decided | RateLimiter:
        made = self._spend(tokens)
        if made is not None:
            return made, 0.0
        with self._lease_lock:
            made = self._spend(tokens)  # another thread may have fetched one meanwhile
            if made is not None:
                return made, 0.0
            started = monotonic()
            answer = self._ask_sync(None, self._request(tokens, self._lease_size or tokens, wait))
            if isinstance(answer, Unreachable):
                return self._fallback(tokens, None, answer, wait)
            return self._leased(tokens, answer, started)

    async def _lease_async(self, tokens: float, wait: float) -> Decided | RateLimiter:
        loop = running_loop()
        while True:
            made = self._spend(tokens)
            if made is not None:
                return made, 0.0
            fetching = self._lease_fetches.get(loop)
            if fetching is None:
                break
            await asyncio.shield(fetching)  # one fetch in flight per loop; then spend from it
        done: asyncio.Future[None] = loop.create_future()
        self._lease_fetches[loop] = done
        try:
            started = monotonic()
            request = self._request(tokens, self._lease_size or tokens, wait)
            answer = await self._ask_async(None, request)
        finally:
            del self._lease_fetches[loop]
            done.set_result(None)
        if isinstance(answer, Unreachable):
            return self._fallback(tokens, None, answer, wait)
        return self._leased(tokens, answer, started)

    # -- the decision, sync and async ---------------------------------------------------

    def _decide_sync(self, tokens: float, key: str | None, wait: float) -> Decided | RateLimiter:
        """The decision with the sync client, and the wait before its tokens may be used;
        or, during an outage under ``on_error="local"`` with a wait allowed, the local twin."""
        if self._leases(tokens, key):
            return self._lease_sync(tokens, wait)
        answer = self._ask_sync(key, self._request(tokens, tokens, wait))
        if isinstance(answer, Unreachable):
            return self._fallback(tokens, key, answer, wait)
        return self._decided(answer)

    async def _decide_async(
        self, tokens: float, key: str | None, wait: float
    ) -> Decided | RateLimiter:
        """``_decide_sync`` with the async client."""
        if self._leases(tokens, key):
            return await self._lease_async(tokens, wait)
        answer = await self._ask_async(key, self._request(tokens, tokens, wait))
        if isinstance(answer, Unreachable):
            return self._fallback(tokens, key, answer, wait)
        return self._decided(answer)

    # -- the public methods ----------------------------------------------------------

    def decide(self, tokens: float = 1, *, key: str | None = None) -> RateDecision:
        """Take ``tokens`` if the bucket holds them now, and say what is left: one round trip.

        Never waits. ``retry_after`` is 0.0 when allowed, ``inf`` when more
        tokens are asked than the burst.
        """
        self._checked(tokens, key, 0.0)
        return _now(self._decide_sync(tokens, key, 0.0))

    async def adecide(self, tokens: float = 1, *, key: str | None = None) -> RateDecision:
        """``decide`` with the async client (batched with concurrent decisions)."""
        self._checked(tokens, key, 0.0)
        return _now(await self._decide_async(tokens, key, 0.0))

    def try_acquire(self, tokens: float = 1, *, key: str | None = None) -> bool:
        """Take ``tokens`` if they are there now; never waits."""
        if key is None:
            # Spent from a live lease with no RateDecision made: a leased call's
            # usual path (``_spend`` without the decision). Anything else — no
            # lease, an expired or empty one, a bad ``tokens`` — goes on below.
            bucket, expires = self._lease
            if monotonic() < expires and bucket.try_acquire(tokens, 0.0):
                self._tally(True)
                return True
        return self.decide(tokens, key=key).allowed

    def acquire(
        self, tokens: float = 1, timeout: float | None = None, *, key: str | None = None
    ) -> None:
        """Take ``tokens``, sleeping for them up to ``timeout`` (default ``max_wait``)."""
        wait = self._checked(tokens, key, timeout)
        outcome = self._decide_sync(tokens, key, wait)
        if isinstance(outcome, RateLimiter):
            try:
                outcome.acquire(tokens, wait)
            except RateLimitExceeded:
                self._tally(False)
                raise
            self._tally(True)
            return
        made, pause = outcome
        if not made.allowed:
            raise RateLimitExceeded(self._name, made.retry_after)
        if pause > 0.0:
            sleep_sync(pause, self._sleep)

    async def aacquire(
        self, tokens: float = 1, timeout: float | None = None, *, key: str | None = None
    ) -> None:
        """Take ``tokens``, awaiting them up to ``timeout`` (default ``max_wait``)."""
        wait = self._checked(tokens, key, timeout)
        outcome = await self._decide_async(tokens, key, wait)
        if isinstance(outcome, RateLimiter):
            try:
                await outcome.aacquire(tokens, wait)
            except RateLimitExceeded:
                self._tally(False)
                raise
            self._tally(True)
            return
        made, pause = outcome
        if not made.allowed:
            raise RateLimitExceeded(self._name, made.retry_after)
        if pause > 0.0:
            await sleep_async(pause, self._sleep)

    def keyed(self, key: str | Callable[..., str]) -> KeyedRedisRateLimiter:
        """This limiter on the bucket of ``key``: a str, or a function of each call's
        arguments giving it (for the decorator and ``call`` / ``acall``)."""
        return KeyedRedisRateLimiter(self, key)

    # -- the protocol -------------------------------------------------------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        return self._admission(None)

    def _admission(self, key: str | None) -> Any:
        """A call's entry: None when the lease covers it, else the wait that asks Redis."""
        if self._leases(1, key) and self._spend(1) is not None:
            return None
        return _Admit(self, key)

    # -- reading ----------------------------------------------------------------------

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def available(self) -> float:
        """Whole tokens the latest decision of this process left (the burst before any):
        the shared bucket's figure as of that decision, with no round trip."""
        bucket, expires = self._lease
        if monotonic() < expires:  # spending a lease: what is left of it
            return float(math.floor(bucket.tokens_at(0.0)))
        last = self._last
        return float(self._burst if last is None else last.remaining)

    @property
    def store(self) -> RedisStore:
        return self._store

    @property
    def stats(self) -> RateLimiterStats:
        """``RateLimiterStats``: ``available`` is the whole tokens the latest decision
        of this process left (the burst before any); the counts are this process's."""
        allowed, rejected = self._counts.snapshot()
        return RateLimiterStats(
            name=self._name,
            rate=self._rate,
            per=self._per,
            burst=self._burst,
            available=self.available,
            allowed=allowed,
            rejected=rejected,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self._name!r} rate={self._rate!r}"
            f" per={self._per!r} burst={self._burst!r} lease={self._lease_size!r}>"
        )


class _Admit(Wait):
    """The wait of a call's entry: one decision (sync or async), then the
    reservation's sleep if there is one, or RateLimitExceeded."""

    __slots__ = ("_key", "_limiter")

    def __init__(self, limiter: RedisRateLimiter, key: str | None) -> None:
        self._limiter = limiter
        self._key = key

    def wait_sync(self) -> None:
        self._limiter.acquire(1, key=self._key)

    async def wait_async(self) -> None:
        await self._limiter.aacquire(1, key=self._key)


class KeyedRedisRateLimiter(Block, Policy):
    """A ``RedisRateLimiter`` on the bucket of a key: made by ``limiter.keyed(key)``.

    With a str key it has every form. With a function of the call's
    arguments it is a decorator, ``call`` / ``acall`` and a Pipeline member
    (a ``with`` block has no arguments to give it: a TypeError).
    """

    __slots__ = ("_key", "_limiter", "_name")

    def __init__(self, limiter: RedisRateLimiter, key: str | Callable[..., str]) -> None:
        if not isinstance(key, str) and not callable(key):
            raise TypeError(f"key must be a str or a callable, got {key!r}")
        if limiter._lease_size is not None:
            raise ValueError(
                f"key must be None for a limiter with a lease (lease={limiter._lease_size!r});"
                f" got key={key!r}"
            )
        self._limiter = limiter
        self._key = key
        self._name = limiter.name

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        key = self._key
        if not isinstance(key, str):
            if args is None:
                raise TypeError(
                    f"{self!r} takes its key from the call's arguments: a with block has none"
                )
            key = key(*args, **(kwargs or {}))
        return self._limiter._admission(key)

    @property
    def limiter(self) -> RedisRateLimiter:
        return self._limiter

    @property
    def stats(self) -> RateLimiterStats:
        return self._limiter.stats

    def __repr__(self) -> str:
        return f"<KeyedRedisRateLimiter of {self._limiter!r} key={self._key!r}>"

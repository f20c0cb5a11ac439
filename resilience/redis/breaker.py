"""RedisCircuitBreaker: one view of a dependency for a whole fleet, kept in Redis.

Each process decides every call with a local ``CircuitBreaker`` (this
class is one, with the same settings and forms), at local speed: no round
trip per call. The store's worker exchanges with Redis every
``sync_interval``: the outcomes this process counted since the last
exchange go in (read from the core's own totals, so counting costs nothing
per call), the fleet's state comes out, in one script. The fleet's state
changes only by compare-and-set on its generation inside the scripts:

- CLOSED -> OPEN when, over the last ``fleet_window`` seconds, the fleet
  made ``minimum_calls`` calls, ``failure_rate`` of them failed, and at
  least ``quorum`` processes each failed at ``failure_rate`` of their own
  calls: one bad process trips only its own local breaker.
- OPEN -> HALF_OPEN after ``reset_timeout`` (server time). The first
  process to exchange then runs the fleet's probes (``half_open_calls`` of
  them, through its local breaker put HALF_OPEN); its reservation lapses
  after ``reset_timeout`` if it dies. Its probes' outcome is reported at
  once and closes or reopens the fleet.

The fleet's decisions reach the local breaker as ``open_for`` (every
process but the probe owner refuses, with ``retry_after`` the fleet's
time to half-open, plus at most one ``sync_interval``, so that the next
exchange always comes first) and ``half_open`` (the probe owner). While
Redis cannot answer, the breaker is its local breaker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._core import _fork
from .._core._validate import count, positive
from ..breaker import CircuitBreaker, CircuitState
from ._breaker_scripts import FIELDS, REPORT, SYNC
from ._store import RedisStore, Script, Unreachable, check_reply
from ._worker import Job, worker_for

__all__ = ["RedisCircuitBreaker"]

_SYNC = Script("breaker sync", SYNC)
_REPORT = Script("breaker report", REPORT)
STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
MICROSECONDS = 1_000_000
# The fleet window in at most this many buckets of counts (each at least a sync interval).
BUCKETS = 20


class RedisCircuitBreaker(CircuitBreaker):
    """A ``CircuitBreaker`` whose opening is decided by a fleet through Redis.

    See the module docstring. ``failure_rate`` is required (the fleet rule
    needs a rate); every other ``CircuitBreaker`` setting applies to the
    local breaker as usual. ``.state`` is the local state, which the fleet's
    decisions drive, so it is the more restrictive of the two;
    ``.fleet_state`` is the fleet's as of the latest exchange.
    ``sync()`` makes one exchange now (the worker makes one every
    ``sync_interval``).
    """

    __slots__ = (
        "_bucket_us",
        "_buckets",
        "_exchange",
        "_fleet",
        "_fleet_window",
        "_job",
        "_probing",
        "_quorum",
        "_reports",
        "_rule",
        "_sent",
        "_store",
        "_sync_interval",
        "_ttl_ms",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        *,
        quorum: int = 2,
        sync_interval: float = 0.5,
        fleet_window: float = 30.0,
        failure_rate: float | None = 0.5,
        minimum_calls: int = 20,
        reset_timeout: float = 30.0,
        half_open_calls: int = 1,
        **settings: Any,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {store!r}")
        if store.client is None:
            raise TypeError(
                f"store must have a sync client (the worker exchanges with it), got {store!r}"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str (it names the keys), got {name!r}")
        if failure_rate is None:
            raise ValueError(
                "failure_rate must be a ratio in (0, 1] for a fleet's breaker (the fleet rule"
                " needs a rate), got None"
            )
        self._quorum = count("quorum", quorum)
        self._sync_interval = positive("sync_interval", sync_interval)
        self._fleet_window = positive("fleet_window", fleet_window)
        if self._fleet_window < self._sync_interval:
            raise ValueError(
                f"fleet_window must be >= sync_interval ({sync_interval!r}), got {fleet_window!r}"
            )
        super().__init__(
            name,
            failure_rate=failure_rate,
            minimum_calls=minimum_calls,
            reset_timeout=reset_timeout,
            half_open_calls=half_open_calls,
            **settings,
        )
        self._store = store
        # The fleet rule's settings (the local breaker checked them): what the scripts are sent.
        self._rule = (int(minimum_calls), float(failure_rate), float(reset_timeout))
        width = max(self._sync_interval, self._fleet_window / BUCKETS)
        self._bucket_us = max(1, round(width * MICROSECONDS))
        self._buckets = max(1, round(self._fleet_window / width))
        # Long enough for an open fleet and a window of counts between two exchanges.
        lasting = self._fleet_window + self._rule[2] + 10.0 * self._sync_interval
        self._ttl_ms = max(1, round(lasting * 1000))
        self._fleet: tuple[int, int, bool] = (0, 0, False)  # state, generation, probe owner
        self._sent = (0, 0)  # the core's totals as of the last exchange
        self._probing: int | None = None  # the generation whose probes this process runs
        self._reports: set[asyncio.Task[None]] = set()
        self._exchange = _fork.rlock()
        self._job: Job = self._exchanges()
        _fork.register(self)

    def _exchanges(self) -> Job:
        """The worker's job: an exchange every ``sync_interval``, and at once when
        a change of the fleet's state is published (so it is known within a round trip)."""
        job = worker_for(self._store).every(self._sync_interval, self.sync)
        job.wake_on(self._channel)
        return job

    def _reset_in_child(self) -> None:
        """In a forked child: the parent's worker is not there; the child's takes the exchanges."""
        self._reports = set()
        self._probing = None
        self._job = self._exchanges()

    # -- the exchange ------------------------------------------------------------

    def _keys(self, generation: int) -> tuple[str, str]:
        key = self._store.key
        return key("breaker", self._name or "", None, "state"), key(
            "breaker", self._name or "", None, f"counts:{generation}"
        )

    @property
    def _channel(self) -> str:
        return self._store.key("breaker", self._name or "", None, "events")

    def sync(self) -> None:
        """One exchange with the fleet now: this process's outcomes since the
        last one go in, the fleet's state comes out and is applied here."""
        with self._exchange:  # one at a time: two would send the same outcomes twice
            self._sync()

    def _sync(self) -> None:
        core = self._core
        calls, failures = core.total_calls, core.total_failures
        sent_calls, sent_failures = self._sent
        generation = self._fleet[1]
        reply = self._store.run_sync(
            _SYNC,
            self._keys(generation),
            (
                self._store.process_id,
                calls - sent_calls,
                failures - sent_failures,
                generation,
                self._bucket_us,
                self._buckets,
                self._rule[0],
                repr(self._rule[1]),
                self._quorum,
                self._open_us(),
                self._ttl_ms,
                self._channel,
            ),
        )
        if isinstance(reply, Unreachable):
            return  # an outage: the local breaker decides alone until Redis answers
        self._sent = (calls, failures)
        self._apply(check_reply(_SYNC, reply, FIELDS))

    def _open_us(self) -> int:
        return max(1, round(self._rule[2] * MICROSECONDS))

    def _apply(self, reply: list[int]) -> None:
        """Bring the local breaker into line with the fleet's state (under ``_exchange``:
        re-entered when a move of the local breaker reports the probes' outcome)."""
        with self._exchange:
            self._apply_fleet(reply)

    def _apply_fleet(self, reply: list[int]) -> None:
        code, generation, left_us, mine = reply
        before = self._fleet
        owner = mine == 1
        self._fleet = (code, generation, owner)
        core = self._core
        local = self.state
        if local in (CircuitState.FORCED_OPEN, CircuitState.DISABLED):
            return  # an operator's decision, or a hold, outranks the fleet's
        left = left_us / MICROSECONDS
        if code == 1 or (code == 2 and not owner):
            # Refuse until the fleet may let calls through; a sync interval
            # more, so that the next exchange comes before the local half-open.
            wanted = left + self._sync_interval
            wait = core.retry_after()
            if local is not CircuitState.OPEN or wait is None or wait < left:
                core.open_for(wanted)
        elif code == 2 and owner:
            if before[:2] != (2, generation) or not before[2]:
                self._probing = generation
                core.half_open()
        elif before[0] != 0 and local is not CircuitState.CLOSED:
            core.reset()  # the fleet closed: so does the local breaker it had opened

    # -- the probes' outcome, reported at once --------------------------------------

    def _transition(self, old: int, new: int) -> None:
        super()._transition(old, new)
        probing = self._probing
        if probing is None or STATES[old] is not CircuitState.HALF_OPEN:
            return
        if new not in (0, 1):  # not CLOSED or OPEN: a hold or an operator's move
            return
        self._probing = None
        self._report(probing, new == 0)

    def _report(self, generation: int, succeeded: bool) -> None:
        args = (
            self._store.process_id,
            generation,
            1 if succeeded else 0,
            self._open_us(),
            self._ttl_ms,
            self._channel,
        )
        keys = self._keys(generation)[:1]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: a round trip in this thread
            reply = self._store.run_sync(_REPORT, keys, args)
            if not isinstance(reply, Unreachable):
                self._apply(check_reply(_REPORT, reply, FIELDS))
            return
        task = loop.create_task(self._areport(keys, args))
        self._reports.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._reports.discard)

    async def _areport(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> None:
        reply = await self._store.run_async(_REPORT, keys, args)
        if not isinstance(reply, Unreachable):
            self._apply(check_reply(_REPORT, reply, FIELDS))

    # -- reading ----------------------------------------------------------------------

    @property
    def fleet_state(self) -> CircuitState:
        """The fleet's state as of the latest exchange (CLOSED before any)."""
        return STATES[self._fleet[0]]

    @property
    def store(self) -> RedisStore:
        return self._store

    def close(self) -> None:
        """Stop exchanging with the fleet (the local breaker goes on alone)."""
        self._job.cancel()

    def __repr__(self) -> str:
        return (
            f"<RedisCircuitBreaker name={self._name!r} state={self.state.value}"
            f" fleet_state={self.fleet_state.value}>"
        )

"""Load shedding by criticality: ``Criticality``, ``request_criticality``, ``DegradationManager``.

Every expectation comes from docs/architecture.md ("Degradation") and the docstrings of
``resilience.degradation``, worked out by hand: by default ``SHEDDABLE`` is
shed from ``levels[1]``, ``SHEDDABLE_PLUS`` from ``levels[2]``, ``CRITICAL``
from ``levels[3]`` (when there is one) and ``CRITICAL_PLUS`` never; a
``shed_at`` mapping must never shed a more critical class at a lower level
than a less critical one. Managers run on a ``FakeClock`` and are built in
each test under ``policy_impl`` (for the whole module: their shed counters
are core ``Counters``), so every test runs on both twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import pickle
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from resilience.degradation import (
    Criticality,
    DegradationManager,
    current_criticality,
    request_criticality,
)
from resilience.errors import LoadShedError, ResilienceError
from resilience.testing import FakeClock

# Every test runs once on each twin of the core (``policy_impl``): the
# policies built here take their core classes from the twin it selects.
pytestmark = pytest.mark.usefixtures("policy_impl")

LEVELS = ("normal", "degraded", "critical")
FIVE = ("green", "blue", "yellow", "orange", "red")

SHEDDABLE = Criticality.SHEDDABLE
SHEDDABLE_PLUS = Criticality.SHEDDABLE_PLUS
CRITICAL = Criticality.CRITICAL
CRITICAL_PLUS = Criticality.CRITICAL_PLUS
ALL = tuple(Criticality)
NAMES = ("SHEDDABLE", "SHEDDABLE_PLUS", "CRITICAL", "CRITICAL_PLUS")
GUARD = 10.0  # seconds: a deadlock guard for thread joins, never an assertion on time


def make(levels: tuple[str, ...] = LEVELS, **kwargs: Any) -> tuple[DegradationManager, FakeClock]:
    clock = FakeClock()
    return DegradationManager(levels, clock=clock, **kwargs), clock


def admitted_at(mgr: DegradationManager, level: str) -> set[Criticality]:
    """The classes admitted while ``level`` is held by hand."""
    mgr.set_level(level)
    return {c for c in ALL if mgr.admits(c)}


class Flag:
    """A trigger predicate that returns ``.on``."""

    def __init__(self, on: bool = False) -> None:
        self.on = on

    def __call__(self) -> bool:
        return self.on


def test_runs_on_the_twin_under_test(policy_impl):
    mgr, _ = make()
    assert type(mgr._shed) is policy_impl.Counters


# -- Criticality -----------------------------------------------------------------------


def test_criticality_is_ordered_least_critical_first():
    assert SHEDDABLE < SHEDDABLE_PLUS < CRITICAL < CRITICAL_PLUS
    assert [c.name for c in Criticality] == list(NAMES)


def test_the_default_criticality_is_critical():
    assert current_criticality() is CRITICAL


# -- default shedding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "admitted"),
    [
        ("normal", set(ALL)),
        ("degraded", {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}),
        ("critical", {CRITICAL, CRITICAL_PLUS}),
    ],
)
def test_default_shedding_with_three_levels(policy_impl, level, admitted):
    mgr, _ = make()
    assert admitted_at(mgr, level) == admitted
    # By name too, and admit() agrees with admits().
    for c in ALL:
        assert mgr.admits(c.name) is (c in admitted)


@pytest.mark.parametrize(
    ("level", "admitted"),
    [
        ("green", set(ALL)),
        ("blue", {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}),
        ("yellow", {CRITICAL, CRITICAL_PLUS}),
        ("orange", {CRITICAL_PLUS}),
        ("red", {CRITICAL_PLUS}),
    ],
)
def test_default_shedding_with_five_levels(policy_impl, level, admitted):
    mgr, _ = make(FIVE)
    assert admitted_at(mgr, level) == admitted


def test_default_shed_levels(policy_impl):
    three, _ = make()
    assert [three.shed_level(c) for c in ALL] == ["degraded", "critical", None, None]
    five, _ = make(FIVE)
    assert [five.shed_level(c) for c in ALL] == ["blue", "yellow", "orange", None]
    assert [five.shed_level(n) for n in NAMES] == ["blue", "yellow", "orange", None]


def test_one_level_sheds_nothing_and_two_levels_shed_only_sheddable(policy_impl):
    one, _ = make(("only",))
    assert [one.shed_level(c) for c in ALL] == [None] * 4
    assert all(one.admits(c) for c in ALL)
    two, _ = make(("up", "down"))
    assert [two.shed_level(c) for c in ALL] == ["down", None, None, None]
    assert admitted_at(two, "down") == {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}


def test_critical_plus_is_admitted_at_every_default_level(policy_impl):
    mgr, _ = make(FIVE)
    for level in FIVE:
        mgr.set_level(level)
        mgr.admit(CRITICAL_PLUS)  # never raises
    assert mgr.shed_counts["CRITICAL_PLUS"] == 0


# -- custom shed_at --------------------------------------------------------------------


def test_shed_at_by_names_and_members(policy_impl):
    mgr, _ = make(
        FIVE,
        shed_at={
            "SHEDDABLE": "yellow",
            SHEDDABLE_PLUS: "yellow",
            "CRITICAL": "red",
            CRITICAL_PLUS: "red",
        },
    )
    assert [mgr.shed_level(c) for c in ALL] == ["yellow", "yellow", "red", "red"]
    assert admitted_at(mgr, "blue") == set(ALL)
    assert admitted_at(mgr, "yellow") == {CRITICAL, CRITICAL_PLUS}
    assert admitted_at(mgr, "orange") == {CRITICAL, CRITICAL_PLUS}
    assert admitted_at(mgr, "red") == set()


def test_shed_at_may_shed_critical_plus(policy_impl):
    mgr, _ = make(
        shed_at={"SHEDDABLE": "degraded", "SHEDDABLE_PLUS": "degraded", "CRITICAL": "critical",
                 "CRITICAL_PLUS": "critical"},
    )
    assert admitted_at(mgr, "critical") == set()
    with pytest.raises(LoadShedError) as info:
        mgr.admit(CRITICAL_PLUS)
    assert info.value.criticality == "CRITICAL_PLUS"
    assert info.value.level == "critical"


def test_classes_left_out_of_shed_at_are_never_shed(policy_impl):
    mgr, _ = make(shed_at={"SHEDDABLE": "critical"})
    assert [mgr.shed_level(c) for c in ALL] == ["critical", None, None, None]
    assert admitted_at(mgr, "degraded") == set(ALL)  # not the default any more
    assert admitted_at(mgr, "critical") == {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}


def test_an_empty_shed_at_sheds_nothing(policy_impl):
    mgr, _ = make(shed_at={})
    assert admitted_at(mgr, "critical") == set(ALL)


def test_shed_at_the_first_level_sheds_always(policy_impl):
    mgr, _ = make(shed_at={"SHEDDABLE": "normal"})
    assert mgr.level == "normal"
    assert not mgr.admits(SHEDDABLE)
    assert mgr.admits(SHEDDABLE_PLUS)


def test_shed_at_may_shed_several_classes_at_the_same_level(policy_impl):
    mgr, _ = make(shed_at={"SHEDDABLE": "critical", "SHEDDABLE_PLUS": "critical",
                           "CRITICAL": "critical"})
    assert admitted_at(mgr, "degraded") == set(ALL)
    assert admitted_at(mgr, "critical") == {CRITICAL_PLUS}


@pytest.mark.parametrize(
    ("shed_at", "before"),
    [
        # A more critical class shed at a lower level than a less critical one.
        ({"SHEDDABLE": "critical", "SHEDDABLE_PLUS": "degraded"}, ("SHEDDABLE_PLUS", "SHEDDABLE")),
        ({"SHEDDABLE": "degraded", "SHEDDABLE_PLUS": "critical", "CRITICAL": "degraded"},
         ("CRITICAL", "SHEDDABLE_PLUS")),
        ({"SHEDDABLE": "critical", "SHEDDABLE_PLUS": "critical", "CRITICAL": "critical",
          "CRITICAL_PLUS": "degraded"}, ("CRITICAL_PLUS", "CRITICAL")),
        # A less critical class left out is never shed: shedding a more critical one is too early.
        ({"CRITICAL": "critical"}, ("CRITICAL", "SHEDDABLE_PLUS")),
        ({"SHEDDABLE_PLUS": "critical"}, ("SHEDDABLE_PLUS", "SHEDDABLE")),
        ({"SHEDDABLE": "degraded", "CRITICAL_PLUS": "critical"}, ("CRITICAL_PLUS", "CRITICAL")),
    ],
)
def test_shed_at_must_be_monotone(policy_impl, shed_at, before):
    with pytest.raises(ValueError, match="shed_at") as info:
        make(shed_at=shed_at)
    later, earlier = before
    assert f"{later} before {earlier}" in str(info.value)


@pytest.mark.parametrize("key", ["sheddable", "SHEDDABLE_MINUS", "", 0, 2, None, 1.5])
def test_a_bad_shed_at_key_is_a_value_error_naming_it(policy_impl, key):
    with pytest.raises(ValueError, match="shed_at key") as info:
        make(shed_at={key: "critical"})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("level", ["Critical", "", 2, None])
def test_a_bad_shed_at_level_is_a_value_error_naming_it(policy_impl, level):
    with pytest.raises(ValueError, match="shed_at level") as info:
        make(shed_at={"SHEDDABLE": level})
    assert repr(level) in str(info.value)


@pytest.mark.parametrize("shed_at", [[("SHEDDABLE", "critical")], "SHEDDABLE", 3, object()])
def test_shed_at_that_is_not_a_mapping_is_a_type_error(policy_impl, shed_at):
    with pytest.raises(TypeError, match="shed_at"):
        make(shed_at=shed_at)


def test_shed_at_may_be_any_mapping(policy_impl):
    class Frozen(Mapping[Any, str]):
        def __init__(self, data: dict[Any, str]) -> None:
            self._data = data

        def __getitem__(self, key: Any) -> str:
            return self._data[key]

        def __iter__(self) -> Any:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    mgr, _ = make(shed_at=Frozen({"SHEDDABLE": "degraded"}))
    assert mgr.shed_level(SHEDDABLE) == "degraded"


@pytest.mark.parametrize("bad", ["sheddable", 0, 4, None, 1.0])
def test_a_bad_criticality_is_a_value_error_naming_it(policy_impl, bad):
    mgr, _ = make()
    for method in (mgr.admits, mgr.admit, mgr.shed_level, mgr.admission):
        if bad is None and method is not mgr.shed_level:
            continue  # None means "the current one" there
        with pytest.raises(ValueError, match="criticality") as info:
            method(bad)
        assert repr(bad) in str(info.value)
    assert mgr.shed_counts == dict.fromkeys(NAMES, 0)


# -- request_criticality ---------------------------------------------------------------


def test_request_criticality_sets_the_block_and_yields_the_member():
    with request_criticality("SHEDDABLE") as value:
        assert value is SHEDDABLE
        assert current_criticality() is SHEDDABLE
    assert current_criticality() is CRITICAL


def test_request_criticality_nests_and_restores_each_level():
    seen = []
    with request_criticality(SHEDDABLE):
        seen.append(current_criticality())
        with request_criticality("CRITICAL_PLUS"):
            seen.append(current_criticality())
            with request_criticality(SHEDDABLE_PLUS):
                seen.append(current_criticality())
            seen.append(current_criticality())
        seen.append(current_criticality())
    seen.append(current_criticality())
    assert seen == [SHEDDABLE, CRITICAL_PLUS, SHEDDABLE_PLUS, CRITICAL_PLUS, SHEDDABLE, CRITICAL]


def test_request_criticality_resets_after_an_exception():
    class Boom(Exception):
        pass

    with request_criticality(SHEDDABLE_PLUS):
        with pytest.raises(Boom), request_criticality(SHEDDABLE):
            raise Boom
        assert current_criticality() is SHEDDABLE_PLUS
    assert current_criticality() is CRITICAL


def test_a_bad_request_criticality_raises_and_changes_nothing():
    with request_criticality(SHEDDABLE):
        with pytest.raises(ValueError, match="criticality"), request_criticality("URGENT"):
            pass  # pragma: no cover
        assert current_criticality() is SHEDDABLE
    assert current_criticality() is CRITICAL


def test_admit_without_an_argument_judges_the_current_criticality(policy_impl):
    mgr, _ = make()
    mgr.set_level("degraded")
    assert mgr.admits()  # CRITICAL by default
    mgr.admit()
    with request_criticality(SHEDDABLE):
        assert not mgr.admits()
        with pytest.raises(LoadShedError) as info:
            mgr.admit()
        assert info.value.criticality == "SHEDDABLE"
        # An explicit argument wins over the context.
        assert mgr.admits(CRITICAL)
    with request_criticality(SHEDDABLE_PLUS):
        assert mgr.admits()
    assert mgr.shed_counts == {"SHEDDABLE": 1, "SHEDDABLE_PLUS": 0, "CRITICAL": 0,
                               "CRITICAL_PLUS": 0}


def test_the_criticality_propagates_into_asyncio_tasks():
    async def read() -> Criticality:
        await asyncio.sleep(0)
        return current_criticality()

    async def main() -> tuple[Criticality, Criticality, Criticality]:
        with request_criticality(SHEDDABLE):
            inside = await asyncio.create_task(read())
            gathered = (await asyncio.gather(read()))[0]
        after = await asyncio.create_task(read())
        return inside, gathered, after

    assert asyncio.run(main()) == (SHEDDABLE, SHEDDABLE, CRITICAL)


def test_a_task_setting_its_criticality_does_not_change_its_parents():
    async def child() -> Criticality:
        with request_criticality(CRITICAL_PLUS):
            await asyncio.sleep(0)
            inner = current_criticality()
        return inner

    async def main() -> tuple[Criticality, Criticality]:
        with request_criticality(SHEDDABLE):
            task = asyncio.create_task(child())
            await asyncio.sleep(0)  # the child is inside its block now
            during = current_criticality()
            inner = await task
        return during, inner

    assert asyncio.run(main()) == (SHEDDABLE, CRITICAL_PLUS)


def test_concurrent_tasks_each_keep_their_own_criticality(policy_impl):
    mgr, _ = make()
    mgr.set_level("degraded")
    results: dict[str, list[tuple[Criticality, bool]]] = {}

    async def serve(name: str, criticality: Criticality) -> None:
        seen = results.setdefault(name, [])
        with request_criticality(criticality):
            for _ in range(5):
                await asyncio.sleep(0)  # interleave with the others
                seen.append((current_criticality(), mgr.admits()))

    async def main() -> None:
        await asyncio.gather(
            serve("a", SHEDDABLE),
            serve("b", CRITICAL_PLUS),
            serve("c", SHEDDABLE_PLUS),
        )

    asyncio.run(main())
    assert results == {
        "a": [(SHEDDABLE, False)] * 5,
        "b": [(CRITICAL_PLUS, True)] * 5,
        "c": [(SHEDDABLE_PLUS, True)] * 5,
    }


def test_the_criticality_propagates_into_a_copied_context_run_in_a_thread():
    seen: list[Criticality] = []
    with request_criticality(SHEDDABLE_PLUS):
        context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(lambda: seen.append(current_criticality()),)
    )
    thread.start()
    thread.join(GUARD)
    assert seen == [SHEDDABLE_PLUS]
    assert current_criticality() is CRITICAL


def test_a_block_in_a_copied_context_does_not_leak_out_of_it():
    held = []

    def inside() -> Criticality:
        with request_criticality(SHEDDABLE):
            pass
        restored = current_criticality()
        held.append(request_criticality(SHEDDABLE))
        held[0].__enter__()  # never exited: the copy keeps it
        return restored

    with request_criticality(SHEDDABLE_PLUS):
        context = contextvars.copy_context()
        assert context.run(inside) is SHEDDABLE_PLUS
        assert context.run(current_criticality) is SHEDDABLE
        assert current_criticality() is SHEDDABLE_PLUS
        context.run(held[0].__exit__, None, None, None)
        assert context.run(current_criticality) is SHEDDABLE_PLUS
    assert current_criticality() is CRITICAL


def test_asyncio_to_thread_carries_the_criticality(policy_impl):
    mgr, _ = make()
    mgr.set_level("critical")

    async def main() -> tuple[Criticality, bool]:
        with request_criticality(SHEDDABLE_PLUS):
            return await asyncio.to_thread(lambda: (current_criticality(), mgr.admits()))

    assert asyncio.run(main()) == (SHEDDABLE_PLUS, False)


# -- admit, admission and LoadShedError --------------------------------------------------


def test_admit_raises_load_shed_error_with_criticality_and_level(policy_impl):
    mgr, _ = make()
    mgr.set_level("critical")
    with pytest.raises(LoadShedError) as info:
        mgr.admit(SHEDDABLE_PLUS)
    err = info.value
    assert isinstance(err, ResilienceError)
    assert (err.criticality, err.level) == ("SHEDDABLE_PLUS", "critical")
    assert "SHEDDABLE_PLUS" in str(err) and "critical" in str(err)


def test_load_shed_error_survives_pickling(policy_impl):
    mgr, _ = make()
    mgr.set_level("degraded")
    with pytest.raises(LoadShedError) as info:
        mgr.admit("SHEDDABLE")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is LoadShedError
    assert (copy.criticality, copy.level) == ("SHEDDABLE", "degraded")
    assert str(copy) == str(info.value)


def test_shed_counts_count_admit_refusals_only(policy_impl):
    mgr, _ = make(FIVE)
    assert mgr.shed_counts == dict.fromkeys(NAMES, 0)
    mgr.set_level("orange")
    for c in ALL:  # asking is free
        mgr.admits(c)
    assert mgr.shed_counts == dict.fromkeys(NAMES, 0)
    for c, times in ((SHEDDABLE, 3), (SHEDDABLE_PLUS, 1), (CRITICAL, 2), (CRITICAL_PLUS, 4)):
        for _ in range(times):
            with contextlib.suppress(LoadShedError):
                mgr.admit(c)
    assert mgr.shed_counts == {"SHEDDABLE": 3, "SHEDDABLE_PLUS": 1, "CRITICAL": 2,
                               "CRITICAL_PLUS": 0}
    mgr.set_level("green")
    for c in ALL:
        mgr.admit(c)  # admitted ones are not counted
    assert mgr.shed_counts == {"SHEDDABLE": 3, "SHEDDABLE_PLUS": 1, "CRITICAL": 2,
                               "CRITICAL_PLUS": 0}
    # A copy: changing it changes nothing.
    counts = mgr.shed_counts
    counts["SHEDDABLE"] = 100
    assert mgr.shed_counts["SHEDDABLE"] == 3


def test_the_admission_decorator_guards_a_sync_handler(policy_impl):
    mgr, _ = make()
    calls = []

    @mgr.admission()
    def handle(request: str, *, user: str = "anon") -> str:
        """Serve one request."""
        calls.append((request, user))
        return f"served {request}"

    assert handle.__name__ == "handle" and handle.__doc__ == "Serve one request."
    mgr.set_level("degraded")
    with request_criticality(SHEDDABLE), pytest.raises(LoadShedError) as info:
        handle("r1", user="ann")
    assert (info.value.criticality, info.value.level) == ("SHEDDABLE", "degraded")
    assert calls == []  # the handler never ran
    with request_criticality(SHEDDABLE_PLUS):
        assert handle("r2", user="bob") == "served r2"
    assert handle("r3") == "served r3"  # CRITICAL by default
    assert calls == [("r2", "bob"), ("r3", "anon")]
    assert mgr.shed_counts["SHEDDABLE"] == 1


def test_the_admission_decorator_guards_an_async_handler(policy_impl):
    mgr, _ = make()
    calls = []

    @mgr.admission()
    async def handle(request: str) -> str:
        await asyncio.sleep(0)
        calls.append(request)
        return f"served {request}"

    assert inspect.iscoroutinefunction(handle)
    assert handle.__name__ == "handle"
    mgr.set_level("critical")

    async def main() -> list[object]:
        outcomes: list[object] = []
        for c in ALL:
            with request_criticality(c):
                try:
                    outcomes.append(await handle(c.name))
                except LoadShedError as exc:
                    outcomes.append((exc.criticality, exc.level))
        return outcomes

    assert asyncio.run(main()) == [
        ("SHEDDABLE", "critical"),
        ("SHEDDABLE_PLUS", "critical"),
        "served CRITICAL",
        "served CRITICAL_PLUS",
    ]
    assert calls == ["CRITICAL", "CRITICAL_PLUS"]
    assert mgr.shed_counts == {"SHEDDABLE": 1, "SHEDDABLE_PLUS": 1, "CRITICAL": 0,
                               "CRITICAL_PLUS": 0}


def test_an_async_handler_is_judged_when_awaited_not_when_called(policy_impl):
    mgr, _ = make()

    @mgr.admission()
    async def handle() -> str:
        return "served"

    mgr.set_level("degraded")

    async def main() -> str:
        with request_criticality(SHEDDABLE):
            coroutine = handle()  # nothing judged yet
        return await coroutine  # judged here, as CRITICAL

    assert asyncio.run(main()) == "served"
    assert mgr.shed_counts["SHEDDABLE"] == 0


def test_admission_with_a_fixed_criticality_ignores_the_context(policy_impl):
    mgr, _ = make()
    mgr.set_level("degraded")

    @mgr.admission("SHEDDABLE")
    def batch() -> str:
        return "done"

    @mgr.admission(CRITICAL_PLUS)
    def checkout() -> str:
        return "paid"

    with request_criticality(CRITICAL_PLUS), pytest.raises(LoadShedError):
        batch()
    with request_criticality(SHEDDABLE):
        assert checkout() == "paid"
    assert mgr.shed_counts["SHEDDABLE"] == 1
    assert mgr.shed_counts["CRITICAL_PLUS"] == 0


def test_admission_on_a_method_passes_self(policy_impl):
    mgr, _ = make()

    class Service:
        def __init__(self) -> None:
            self.served = 0

        @mgr.admission()
        def handle(self, n: int) -> int:
            self.served += n
            return self.served

    service = Service()
    assert service.handle(2) == 2
    mgr.set_level("critical")
    with request_criticality(SHEDDABLE_PLUS), pytest.raises(LoadShedError):
        service.handle(5)
    assert service.served == 2


# -- shedding follows the level ----------------------------------------------------------


def test_shedding_follows_triggers_up_and_recovery_down(policy_impl):
    mgr, clock = make(recovery=10.0, check_interval=0.0)
    hot, burning = Flag(), Flag()
    mgr.trigger_when(hot, "degraded")
    mgr.trigger_when(burning, "critical")

    def admitted() -> set[Criticality]:
        return {c for c in ALL if mgr.admits(c)}

    assert admitted() == set(ALL)
    hot.on = True
    assert admitted() == {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}  # at once
    burning.on = True
    assert admitted() == {CRITICAL, CRITICAL_PLUS}
    with request_criticality(SHEDDABLE_PLUS), pytest.raises(LoadShedError) as info:
        mgr.admit()
    assert info.value.level == "critical"

    hot.on = burning.on = False  # quiet from t=0
    clock.advance(9.9)
    assert admitted() == {CRITICAL, CRITICAL_PLUS}  # not yet
    clock.advance(0.1)  # t=10: one step down
    assert mgr.level == "degraded"
    assert admitted() == {SHEDDABLE_PLUS, CRITICAL, CRITICAL_PLUS}
    clock.advance(9.9)
    assert not mgr.admits(SHEDDABLE)
    clock.advance(0.1)  # t=20: back to normal
    assert admitted() == set(ALL)
    mgr.admit(SHEDDABLE)
    assert mgr.shed_counts == {"SHEDDABLE": 0, "SHEDDABLE_PLUS": 1, "CRITICAL": 0,
                               "CRITICAL_PLUS": 0}


def test_admits_evaluates_due_triggers_lazily(policy_impl):
    mgr, clock = make(check_interval=5.0)
    flag = Flag()
    mgr.trigger_when(flag, "critical")
    assert mgr.admits(SHEDDABLE)  # evaluated at t=0: nothing firing
    flag.on = True
    clock.advance(4.0)
    assert mgr.admits(SHEDDABLE)  # within the interval: not evaluated again
    clock.advance(1.0)
    assert not mgr.admits(SHEDDABLE_PLUS)  # due: critical now
    with pytest.raises(LoadShedError):
        mgr.admit(SHEDDABLE)


def test_manual_set_level_holds_the_shedding_until_auto(policy_impl):
    mgr, clock = make(recovery=10.0, check_interval=0.0)
    flag = Flag(on=True)
    mgr.trigger_when(flag, "critical")
    assert not mgr.admits(SHEDDABLE_PLUS)
    mgr.set_level("normal")  # by hand, whatever the trigger says
    assert all(mgr.admits(c) for c in ALL)
    clock.advance(100.0)
    assert all(mgr.admits(c) for c in ALL)
    mgr.set_level("degraded")
    assert not mgr.admits(SHEDDABLE) and mgr.admits(SHEDDABLE_PLUS)
    mgr.auto()  # the firing trigger takes over at once
    assert not mgr.admits(SHEDDABLE_PLUS)
    assert mgr.level == "critical"


def test_set_level_of_an_unknown_level_changes_no_shedding(policy_impl):
    mgr, _ = make()
    mgr.set_level("degraded")
    with pytest.raises(ValueError, match="'meltdown'"):
        mgr.set_level("meltdown")
    assert not mgr.admits(SHEDDABLE) and mgr.admits(SHEDDABLE_PLUS)


def test_shed_counts_are_safe_under_threads(policy_impl):
    mgr, _ = make()
    mgr.set_level("critical")
    threads, per_thread = 8, 500
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait(GUARD)
        for _ in range(per_thread):
            with contextlib.suppress(LoadShedError):
                mgr.admit(SHEDDABLE)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(GUARD)
    assert mgr.shed_counts["SHEDDABLE"] == threads * per_thread


def test_shed_at_naming_one_criticality_twice_is_a_value_error(policy_impl):
    with pytest.raises(ValueError, match="SHEDDABLE twice"):
        DegradationManager(shed_at={"SHEDDABLE": "critical", Criticality.SHEDDABLE: "degraded"})

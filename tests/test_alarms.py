"""The host's shared timer: alarms ring in order, once, never early, and cancelled ones never ring."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.runtime import alarms as alarms_module
from orchestrator.runtime.alarms import Alarm, Alarms, alarms


@pytest.fixture
async def clock() -> Alarms:
    """Alarms of the test's own loop (not the loop-wide ones other tests may share)."""
    return Alarms(asyncio.get_running_loop())


async def test_alarms_ring_in_the_order_of_their_time_not_of_their_setting(clock: Alarms) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    rung: list[tuple[str, float]] = []
    for delay, name in [(0.15, "late"), (0.05, "early"), (0.1, "middle"), (0.0, "now")]:
        clock.after(delay, lambda arg: rung.append((arg, loop.time())), name)
    await asyncio.sleep(0.3)
    assert [name for name, _ in rung] == ["now", "early", "middle", "late"]
    expected = {"now": 0.0, "early": 0.05, "middle": 0.1, "late": 0.15}
    for name, at in rung:
        assert at - began >= expected[name] - 0.002  # never early (the loop's clock, to a ms)


async def test_a_cancelled_alarm_never_rings_and_the_others_still_do(clock: Alarms) -> None:
    rung: list[str] = []
    first = clock.after(0.05, rung.append, "first")
    clock.after(0.05, rung.append, "second")
    first.cancel()
    first.cancel()  # twice is once
    assert len(clock) == 1
    await asyncio.sleep(0.15)
    assert rung == ["second"] and len(clock) == 0


async def test_an_earlier_alarm_set_later_is_not_held_up_by_a_later_one(clock: Alarms) -> None:
    rung: list[str] = []
    clock.after(30, rung.append, "half a minute")
    clock.after(0.02, rung.append, "soon")
    await asyncio.sleep(0.1)
    assert rung == ["soon"] and len(clock) == 1


async def test_a_callback_may_cancel_another_alarm_of_the_same_round(clock: Alarms) -> None:
    rung: list[str] = []
    second: list[Alarm] = []

    def first(arg: str) -> None:
        rung.append(arg)
        second[0].cancel()

    clock.after(0.01, first, "first")
    second.append(clock.after(0.01, rung.append, "second"))
    await asyncio.sleep(0.08)
    assert rung == ["first"] and len(clock) == 0


async def test_a_failing_callback_does_not_keep_the_others_from_ringing(clock: Alarms) -> None:
    seen: list[object] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: seen.append(context.get("exception"))
    )
    rung: list[str] = []

    def broken(arg: str) -> None:
        raise RuntimeError(arg)

    clock.after(0.01, broken, "boom")
    clock.after(0.01, rung.append, "still")
    await asyncio.sleep(0.08)
    assert rung == ["still"]
    assert [str(exc) for exc in seen] == ["boom"]


async def test_mass_cancellation_compacts_the_heap(clock: Alarms) -> None:
    """Executions cancelled while parked must not leave their alarms behind for hours."""
    parked = [clock.after(3600, lambda _arg: None, f"e{i}") for i in range(1000)]
    keep = clock.after(3600, lambda _arg: None, "kept")
    for alarm in parked:
        alarm.cancel()
    assert len(clock) == 1
    assert len(clock._heap) < 2 * alarms_module._COMPACT_AT
    assert not keep.cancelled


async def test_each_loop_has_its_own_alarms() -> None:
    mine = alarms()
    assert alarms() is mine
    other = await asyncio.to_thread(lambda: asyncio.run(_alarms_of_a_new_loop()))
    assert other is not mine


async def _alarms_of_a_new_loop() -> Alarms:
    return alarms()


def test_alarms_ring_on_uvloop_the_loop_ray_runs_actors_on() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def ring() -> list[str]:
        clock = alarms()
        rung: list[str] = []
        clock.after(0.03, rung.append, "second")
        clock.after(0.01, rung.append, "first")
        clock.after(0.02, rung.append, "never").cancel()
        await asyncio.sleep(0.1)
        return rung

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(ring()) == ["first", "second"]
    finally:
        loop.close()

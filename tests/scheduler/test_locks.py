"""KeyedLocks: one lock per key while in use, nothing kept afterwards."""

from __future__ import annotations

import asyncio

import pytest

from app.scheduler.locks import KeyedLocks

pytestmark = pytest.mark.anyio


async def test_same_key_is_serialised_other_keys_are_not():
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, name: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause)
            order.append(f"{name}-")

    await asyncio.gather(work("a", "a1", 0.05), work("a", "a2", 0), work("b", "b1", 0))
    assert order.index("a1-") < order.index("a2+")  # a2 waited for a1
    assert order.index("b1+") < order.index("a1-")  # b did not wait for a
    assert len(locks) == 0


async def test_entry_lives_while_held_or_awaited_and_goes_after_errors_and_cancels():
    locks = KeyedLocks()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("t"):
            entered.set()
            await release.wait()
            raise RuntimeError("boom")

    held = asyncio.create_task(holder())
    await entered.wait()
    waiter = asyncio.create_task(locks.hold("t").__aenter__())
    await asyncio.sleep(0)
    assert "t" in locks
    assert len(locks) == 1
    waiter.cancel()  # gives up while still waiting
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert "t" in locks  # still held
    release.set()
    with pytest.raises(RuntimeError):
        await held
    assert len(locks) == 0

"""Per-key asyncio locks that exist only while someone holds or waits for them.

A plain ``dict[key, Lock]`` grows with every key ever seen (every tenant, in a long-running
worker). Here each entry counts its users and is dropped by the last one out, so memory is
bounded by the number of keys in use right now.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holders + waiters


class KeyedLocks:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        # No await between lookup and the count going up: on one event loop nobody can drop the
        # entry in between, so every user of a key shares the same lock.
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            # Runs on success, error and on cancellation while still waiting for the lock.
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

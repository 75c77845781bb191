"""Wait for a state, never for a time: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    timeout: float = 5.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Call ``check()`` (sync or async) until it returns a truthy value, and return that value.

    Raises AssertionError naming ``what`` and the last value seen when ``timeout`` runs out, so a
    test that waits for something that never happens fails instead of hanging.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)

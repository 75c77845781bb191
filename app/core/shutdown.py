"""Knowing that a stop began, before the server waits for open connections.

uvicorn handles SIGINT/SIGTERM by refusing new connections and waiting for open ones to finish,
and runs the app's lifespan shutdown only after that: an open event stream never finishes, so a
stop used to hang until the client gave up. ``on_stop_signal`` chains a callback in front of the
server's own handlers, so the app can end its streams the moment a stop begins.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on the current loop when SIGINT/SIGTERM arrives, then the previous handler.

    Returns a function that restores the previous handlers. A no-op outside the main thread
    (signals can only be handled there; servers run in threads only in tests).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)
        elif chained == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt

    for sig in SIGNALS:
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)

    return restore

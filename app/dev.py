"""``whago dev``: the API, a worker and per-tenant WAHA emulators (the ``local`` scheduler) in
one process, on local defaults."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from app.container import Container
from app.core.queue import SaqJobQueue
from app.factory import create_app
from app.settings import Settings, get_settings
from app.worker.runner import running_worker

logger = logging.getLogger("whago.dev")


@contextlib.asynccontextmanager
async def _in_process_worker(app: Litestar, container: Container) -> AsyncIterator[None]:
    async with running_worker(container.settings, container):
        # Heal right away (e.g. chips whose emulator went away with the previous dev process)
        # instead of waiting for the first cron tick.
        try:
            if isinstance(container.queue, SaqJobQueue):
                await container.queue.saq.enqueue("reconcile", timeout=600, key="reconcile:startup")
        except Exception as exc:
            logger.warning("initial reconcile not enqueued: %s", exc)
        yield


def dev_app(settings: Settings | None = None) -> Litestar:
    return create_app(settings or get_settings(), lifespan_hooks=[_in_process_worker])

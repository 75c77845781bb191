"""A worker process that dies mid-provisioning: it creates the WAHA session, writes a marker
file, then hangs until the test SIGKILLs it (no cleanup, no SAQ bookkeeping: a real crash).

Usage: python -m tests.worker.doomed_worker MARKER_FILE   (settings from the environment)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from app.chips.provisioning import ProvisioningService
from app.container import Container
from app.core import db
from app.settings import get_settings
from app.worker.runner import running_worker


async def main(marker: Path) -> None:
    original = ProvisioningService.provision

    async def provision_then_hang(self, chip_id):
        await original(self, chip_id)
        marker.write_text(str(chip_id))  # noqa: ASYNC240  (a tiny file; this worker is about to hang)
        await asyncio.Event().wait()

    ProvisioningService.provision = provision_then_hang
    settings = get_settings()
    await db.start_pool(settings)
    container = Container.build(settings)
    async with running_worker(settings, container, with_cron=False):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

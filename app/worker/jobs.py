"""SAQ job functions: thin wrappers that open the right service and report final failures.

Names are the queue's contract (``app.core.queue`` enqueues them by name): provision_chip,
teardown_chip, rotate_proxy, wake_instance, reconcile, reap_idle, check_proxies, prune_webhook_events,
prune_messages, reconcile_messages, prune_audit, push_alerts, liveness.
The worker's context holds the process's ``Container`` under ``"container"`` (see app.worker.runner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from app.audit.service import AuditService
from app.chips.provisioning import ProvisioningService
from app.container import Container
from app.core import db
from app.core.errors import WhagoError
from app.health.alerts import AlertService
from app.instances.service import InstanceService
from app.liveness.service import LivenessService
from app.messages.service import MessageService
from app.proxies.service import ProxyService
from app.reconciler.service import Reconciler

logger = logging.getLogger("whago.worker")


def _container(ctx) -> Container:
    return ctx["container"]


def describe(exc: BaseException) -> str:
    """A readable reason for the tenant (no stack trace, no secrets: typed errors scrub theirs)."""
    if isinstance(exc, WhagoError):
        return exc.detail
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"unexpected error ({type(exc).__name__})"


@contextlib.asynccontextmanager
async def _heartbeat(ctx):
    """Touch the job while it runs so a dead worker's job is swept quickly (see JobSpec)."""
    job = ctx.get("job")
    if job is None or not job.heartbeat:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(max(1.0, job.heartbeat / 4))
            with contextlib.suppress(Exception):
                await job.update()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _final_failure(ctx, chip_id: str, exc: BaseException, what: str) -> None:
    job = ctx.get("job")
    if getattr(exc, "permanent", False):
        # Retrying cannot help (e.g. Nomad refused the job as invalid): fail now, say why.
        if job is not None:
            job.retries = job.attempts  # SAQ retries only while retries > attempts
        await ProvisioningService(_container(ctx)).mark_failed(UUID(chip_id), f"{what} failed: {describe(exc)}")
        return
    if job is not None and job.attempts >= job.retries:
        reason = f"{what} failed after {job.attempts} attempts: {describe(exc)}"
        await ProvisioningService(_container(ctx)).mark_failed(UUID(chip_id), reason)


async def provision_chip(ctx, *, chip_id: str) -> str:
    try:
        async with _heartbeat(ctx):
            return await ProvisioningService(_container(ctx)).provision(UUID(chip_id))
    except Exception as exc:
        await _final_failure(ctx, chip_id, exc, "Provisioning")
        raise


async def rotate_proxy(ctx, *, chip_id: str) -> str:
    async with _heartbeat(ctx):
        return await ProvisioningService(_container(ctx)).rotate_proxy(UUID(chip_id))


async def teardown_chip(ctx, *, chip_id: str) -> str:
    async with _heartbeat(ctx):
        return await ProvisioningService(_container(ctx)).teardown(UUID(chip_id))


async def wake_instance(ctx, *, user_id: str) -> bool:
    """An idle tenant is active again (enqueued by app.users.activity): bring their instance back."""
    return await ProvisioningService(_container(ctx)).wake_tenant(UUID(user_id))


async def reconcile(ctx) -> dict:
    return (await Reconciler(_container(ctx)).run()).as_dict()


async def reap_idle(ctx) -> list[str]:
    return await InstanceService(_container(ctx)).reap_idle()


async def check_proxies(ctx) -> dict:
    return await ProxyService(_container(ctx)).check_health()


async def prune_webhook_events(ctx, *, keep_days: int = 14) -> int:
    """Processed envelope ids are kept long enough to outlast every WAHA retry policy."""
    rows = await db.fetch(
        "DELETE FROM webhook_events WHERE received_at < now() - make_interval(days => $1) RETURNING 1", keep_days
    )
    return len(rows)


async def reconcile_messages(ctx) -> dict:
    """Messages left pending after their send are completed from WAHA's record of them."""
    return await MessageService(_container(ctx)).reconcile_pending()


async def prune_messages(ctx) -> int:
    """The message log keeps WHAGO_MESSAGE_RETENTION_DAYS (default 30) days; older messages go."""
    return await MessageService(_container(ctx)).prune()


async def prune_audit(ctx) -> int:
    """Audit entries are kept WHAGO_AUDIT_RETENTION_DAYS."""
    return await AuditService(_container(ctx).settings).prune()


async def push_alerts(ctx) -> list[str]:
    """WHAGO_ALERT_WEBHOOK_URL: push alert conditions (rate-limited; app.health.alerts)."""
    return await AlertService(_container(ctx)).push()


async def liveness(ctx) -> dict:
    """WHAGO_LIVENESS_PROBE_SECONDS: probe quiet connected chips, heal dead ones (app.liveness)."""
    async with _heartbeat(ctx):
        return await LivenessService(_container(ctx)).run_pass()


FUNCTIONS: list[Any] = [
    provision_chip,
    rotate_proxy,
    teardown_chip,
    wake_instance,
    reconcile,
    reap_idle,
    check_proxies,
    prune_webhook_events,
    prune_messages,
    reconcile_messages,
    prune_audit,
    push_alerts,
    liveness,
]

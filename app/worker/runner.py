"""Run SAQ workers: ``whago worker`` (a process of its own) or inside ``whago dev``/tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from saq import CronJob, Status, Worker
from saq.types import PartialTimersDict

from app.container import Container
from app.core import context, db, metrics
from app.core.queue import SaqJobQueue
from app.settings import Settings
from app.worker import jobs

logger = logging.getLogger("whago.worker")


def _every(seconds: int) -> str:
    """A cron expression for "every N seconds" (SAQ accepts 6-field crons with seconds)."""
    if seconds < 60:
        return f"*/{max(1, seconds)} * * * * *"
    return f"*/{max(1, seconds // 60)} * * * *"


def cron_jobs(settings: Settings) -> list[CronJob]:
    # unique=True (default) keys each cron job, so several workers never double-schedule it.
    alerts = (
        [CronJob(jobs.push_alerts, cron=_every(60), timeout=60, retries=1, ttl=600)]
        if settings.alert_webhook_url
        else []
    )
    return [
        *alerts,
        CronJob(jobs.reconcile, cron=_every(settings.reconcile_interval_seconds), timeout=600, retries=1, ttl=600),
        CronJob(
            jobs.check_proxies, cron=_every(settings.proxy_check_interval_seconds), timeout=120, retries=1, ttl=600
        ),
        CronJob(jobs.reap_idle, cron="17 * * * *", timeout=600, retries=1, ttl=3600),
        CronJob(jobs.prune_webhook_events, cron="43 3 * * *", timeout=600, retries=1, ttl=3600),
        CronJob(
            jobs.reconcile_messages, cron=_every(settings.reconcile_interval_seconds), timeout=300, retries=1, ttl=600
        ),
        # the pass runs on the probe period itself (short periods work, e.g. in tests)
        CronJob(
            jobs.liveness,
            cron=_every(settings.liveness_probe_seconds),
            timeout=max(60, settings.liveness_probe_seconds * 2),
            retries=1,
            ttl=600,
        ),
        CronJob(jobs.prune_messages, cron="53 3 * * *", timeout=1800, retries=1, ttl=3600),
        CronJob(jobs.prune_audit, cron="51 3 * * *", timeout=600, retries=1, ttl=3600),
    ]


_OUTCOMES = {Status.COMPLETE: "complete", Status.QUEUED: "retried", Status.FAILED: "failed"}


async def _before_job(ctx: Any) -> None:  # SAQ's Context: a dict with our extra key
    """Run the job under the request id of whoever enqueued it (a new one for cron jobs)."""
    job = ctx.get("job")
    request_id = (job.meta or {}).get("request_id") if job is not None else None
    ctx["work_context"] = work_context = context.work(request_id)
    work_context.__enter__()


async def _after_job(ctx: Any) -> None:
    job = ctx.get("job")
    if job is not None:
        outcome = _OUTCOMES.get(job.status)
        if outcome is not None:  # aborted jobs are not an outcome of the job itself
            metrics.JOBS.labels(job.function, outcome).inc()
    work_context = ctx.get("work_context")
    if work_context is not None:
        work_context.__exit__(None, None, None)


def build_worker(settings: Settings, container: Container, *, with_cron: bool = True) -> Worker:
    queue = (
        container.queue.saq if isinstance(container.queue, SaqJobQueue) else SaqJobQueue(container.redis, settings).saq
    )
    worker = Worker(
        queue,
        functions=jobs.FUNCTIONS,
        concurrency=settings.worker_concurrency,
        cron_jobs=cron_jobs(settings) if with_cron else None,
        startup=None,
        shutdown=None,
        before_process=_before_job,
        after_process=_after_job,
        # Sweep often: a job whose worker died is picked up again once its heartbeat is stale.
        timers=cast(
            PartialTimersDict,
            {"sweep": min(10, max(1, settings.job_heartbeat_seconds // 2)), "schedule": 1, "abort": 1},
        ),
        # SAQ also waits this long for its idle timer loops; interrupted jobs are re-queued
        # ("cancelled") and every job is idempotent, so a short grace loses nothing.
        shutdown_grace_period_s=settings.worker_shutdown_grace_seconds,
        # Idle dequeues return every second, so stopping a worker waits for running jobs only,
        # not for the whole grace period.
        dequeue_timeout=1.0,
    )
    worker.context["container"] = container  # read by the job functions (app.worker.jobs)
    for function in jobs.FUNCTIONS:  # every job's series exist (at 0) from the start
        for outcome in _OUTCOMES.values():
            metrics.JOBS.labels(function.__name__, outcome)
    return worker


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, container: Container, *, with_cron: bool = True) -> AsyncIterator[Worker]:
    """A worker as a task on the current loop (dev process, tests); stops cleanly on exit."""
    worker = build_worker(settings, container, with_cron=with_cron)
    worker.SIGNALS = []  # leave SIGINT/SIGTERM to the host process (uvicorn in dev)
    await worker.queue.connect()
    task = asyncio.create_task(worker.start(), name="whago-worker")
    try:
        yield worker
    finally:
        await stop_worker(worker, task, settings.worker_shutdown_grace_seconds)


async def stop_worker(worker: Worker, task: asyncio.Task, grace_seconds: float) -> None:
    """Let running jobs finish (up to the grace period), then stop without a warning.

    SAQ's ``stop`` waits for every task it owns, idle ones included (upkeep timers, dequeue
    loops), and warns when any is left: those are cancelled here first, once no job runs, so a
    clean stop is quiet and quick. A job still running after the grace period is cancelled and
    re-queued by SAQ (every job is idempotent), which it reports.
    """
    deadline = time.monotonic() + grace_seconds
    while worker.job_task_contexts and time.monotonic() < deadline:  # noqa: ASYNC110 - SAQ offers no event
        await asyncio.sleep(0.05)
    idle: list[asyncio.Task] = []
    if not worker.job_task_contexts:
        # No await from here to event.set(): no job can start in between. With the event set, the
        # cancelled dequeue loops are not replaced, and SAQ's own stop finds nothing left to wait for.
        idle = [t for t in worker.tasks if not t.done()]
        worker.tasks.clear()
        # SAQ's "shutting down" line would repeat the process's own one
        logging.getLogger("saq").setLevel(max(logging.WARNING, logging.getLogger("saq").level))
    worker._shutdown_grace_period_s = 0
    worker.event.set()
    for idle_task in idle:
        idle_task.cancel()
    await asyncio.gather(*idle, return_exceptions=True)
    await worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


ALIVE_FILE = Path(tempfile.gettempdir()) / "whago-worker-alive"


async def _alive_file() -> None:
    """Touch ALIVE_FILE every 10 s: the container health check of a process without a port."""
    while True:
        with contextlib.suppress(OSError):
            ALIVE_FILE.touch()
        await asyncio.sleep(10)


async def run_worker(settings: Settings) -> None:
    """``whago worker``: until SIGINT/SIGTERM."""
    container = Container.build(settings)
    await db.start_pool(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_worker(settings, container):
            logger.info("worker started (concurrency %s)", settings.worker_concurrency)
            beat = asyncio.create_task(_alive_file())
            await stop.wait()
            beat.cancel()
            logger.info("worker stopping: finishing running jobs (at most %ss)", settings.worker_shutdown_grace_seconds)
    finally:
        await container.aclose()
        await db.close_pool()

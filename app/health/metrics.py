"""The platform gauges, refreshed before each ``GET /metrics`` (app.health.controller).

Chips by status, the queue depth and the proxy pool's capacity are platform-wide facts, the same in every process: one
process computes them (a GROUP BY over chips, a Redis count) and shares the result in Redis for
``GAUGE_TTL_SECONDS``; other scrapes within that time read it back. So a scrape never scans a
table, and N API processes scraped every 15 s cost one aggregate per 15 s, not N.
"""

from __future__ import annotations

import logging

import msgspec

from app.container import Container
from app.core import metrics
from app.core.queue import QUEUE_NAME, SaqJobQueue
from app.core.redis import key
from app.health import queries

logger = logging.getLogger("whago.metrics")

GAUGE_TTL_SECONDS = 15
_CACHE_KEY = key("metrics", "gauges")


class Gauges(msgspec.Struct):
    chips: dict[str, int]
    queue: dict[str, int]
    proxies: dict[str, int]


async def _compute(container: Container) -> Gauges:
    queue_depth: dict[str, int] = {}
    if isinstance(container.queue, SaqJobQueue):
        queue_depth[QUEUE_NAME] = int(await container.queue.saq.count("queued"))
    return Gauges(chips=await queries.chips_by_status(), queue=queue_depth, proxies=await queries.proxy_capacity())


async def refresh_gauges(container: Container) -> None:
    """Set the platform gauges from the shared cache, recomputing it when it expired.

    A failure leaves the last values in place: a scrape must answer while the database is down
    (the readiness alert tells that story).
    """
    try:
        cached = await container.redis.get(_CACHE_KEY)
        if cached is not None:
            gauges = msgspec.json.decode(cached, type=Gauges)
        else:
            gauges = await _compute(container)
            await container.redis.set(_CACHE_KEY, msgspec.json.encode(gauges), ex=GAUGE_TTL_SECONDS)
    except Exception as exc:  # any outage: keep serving the last known values
        logger.warning("metrics gauges not refreshed: %s", type(exc).__name__)
        return
    for status in metrics.CHIP_STATUSES:
        metrics.CHIPS.labels(status).set(gauges.chips.get(status, 0))
    for name, depth in gauges.queue.items():
        metrics.QUEUE_DEPTH.labels(name).set(depth)
    for state in ("total", "usable"):
        metrics.PROXIES.labels(state).set(gauges.proxies.get(state, 0))
    metrics.PROXY_FREE_SLOTS.set(gauges.proxies.get("free", 0))

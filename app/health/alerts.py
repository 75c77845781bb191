"""Optional push alerts: WHAGO_ALERT_WEBHOOK_URL receives ``{"content": "…"}`` (what Discord and
Slack-compatible incoming webhooks accept) when a condition of nomad/monitoring/whago-alerts.yml
holds that the worker can see for itself: proxy pool exhausted, chips failing, queue backlog, a
dependency down. Each condition is pushed at most once per WHAGO_ALERT_MIN_INTERVAL_SECONDS across
every worker (a Redis key), and a message holds only counts and names, never a secret or an id.
Prometheus + Alertmanager remain the full story; this is for platforms without them.
"""

from __future__ import annotations

import logging

import httpx

from app.container import Container
from app.core import db
from app.core.queue import QUEUE_NAME, SaqJobQueue
from app.core.redis import key
from app.health import queries

logger = logging.getLogger("whago.alerts")

QUEUE_BACKLOG = 100
FAILED_CHIPS_15M = 3


class AlertService:
    def __init__(self, container: Container) -> None:
        self.c = container

    async def conditions(self) -> dict[str, str]:
        """``{name: message}`` for every condition that holds now."""
        found: dict[str, str] = {}
        try:
            await db.ping(self.c.settings.database_timeout_seconds)
        except Exception as exc:
            return {"database": f"WHAGO alert: the database is unavailable ({type(exc).__name__})."}
        try:
            await self.c.scheduler.ping()
        except Exception as exc:
            found["scheduler"] = f"WHAGO alert: the scheduler is unavailable ({type(exc).__name__})."
        proxies = await queries.proxy_capacity()
        if proxies["total"] > 0 and proxies["free"] == 0:
            found["proxy_pool"] = (
                f"WHAGO alert: the proxy pool is exhausted ({proxies['usable']} of {proxies['total']} proxies "
                "usable, no free slot). Add proxies or raise max_chips."
            )
        failed = await queries.chips_failed_since(minutes=15)
        if failed > FAILED_CHIPS_15M:
            found["chips_failed"] = f"WHAGO alert: {failed} chips failed in the last 15 minutes."
        if isinstance(self.c.queue, SaqJobQueue):
            depth = int(await self.c.queue.saq.count("queued"))
            if depth > QUEUE_BACKLOG:
                found["queue_backlog"] = f"WHAGO alert: {depth} jobs waiting in queue {QUEUE_NAME}."
        return found

    async def push(self) -> list[str]:
        """Push every condition that holds and was not pushed recently; returns their names."""
        url = self.c.settings.alert_webhook_url
        if not url:
            return []
        pushed = []
        for name, message in (await self.conditions()).items():
            fresh = await self.c.redis.set(
                key("alert", name), b"1", nx=True, ex=max(1, self.c.settings.alert_min_interval_seconds)
            )
            if not fresh:
                continue
            try:
                async with httpx.AsyncClient(timeout=5.0) as http:
                    response = await http.post(url, json={"content": message})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                # the URL holds the endpoint's token: never logged (and masked by app.core.logs anyway)
                logger.warning("alert %s not pushed: %s", name, type(exc).__name__)
                await self.c.redis.delete(key("alert", name))  # try again on the next run
                continue
            pushed.append(name)
        return pushed

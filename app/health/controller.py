from __future__ import annotations

import asyncio

from litestar import Controller, Response, get
from litestar.di import NamedDependency

from app.core import db
from app.core.http_errors import error_response
from app.core.services import Services


async def _check(probe, timeout: float) -> str:
    try:
        await asyncio.wait_for(probe(), timeout=timeout)
    except Exception as exc:  # any failure of a probe means "not ready", reported by name
        return f"unavailable ({type(exc).__name__})"
    return "ok"


class HealthController(Controller):
    path = "/health"
    tags = ["Operations"]

    @get("/live", operation_id="Live")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="Ready")
    async def ready(self, services: NamedDependency[Services]) -> Response:
        settings = services.settings
        probes = {
            "database": (lambda: db.ping(settings.database_timeout_seconds), settings.database_timeout_seconds),
            "redis": (services.redis.ping, settings.redis_timeout_seconds),
        }
        probes["scheduler"] = (services.scheduler.ping, settings.nomad_timeout_seconds)
        names = list(probes)
        results = await asyncio.gather(*(_check(probe, timeout + 0.5) for probe, timeout in probes.values()))
        checks = dict(zip(names, results, strict=True))
        failing = [name for name, result in checks.items() if result != "ok"]
        if failing:
            return error_response(503, "Not ready: " + ", ".join(failing) + " unavailable.", "dependency_unavailable", checks)
        return Response({"status": "ok", "checks": checks})

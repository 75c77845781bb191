from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide

from app.core.http_errors import error_response
from app.health.dependencies import provide_health_service
from app.health.service import HealthService


class HealthController(Controller):
    path = "/health"
    tags = ["Operations"]
    dependencies = {"health_service": Provide(provide_health_service, sync_to_thread=False)}

    @get("/live", operation_id="Live")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="Ready")
    async def ready(self, health_service: NamedDependency[HealthService]) -> Response:
        checks = await health_service.checks()
        failing = [name for name, result in checks.items() if result != "ok"]
        if failing:
            return error_response(
                503, "Not ready: " + ", ".join(failing) + " unavailable.", "dependency_unavailable", checks
            )
        return Response({"status": "ok", "checks": checks})

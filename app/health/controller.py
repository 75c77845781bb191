from __future__ import annotations

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency, Provide
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.container import Container
from app.core import metrics
from app.core.http_errors import error_response
from app.health.dependencies import provide_health_service
from app.health.metrics import refresh_gauges
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
        for name, result in checks.items():
            metrics.READY.labels(name).set(1 if result == "ok" else 0)
        failing = [name for name, result in checks.items() if result != "ok"]
        if failing:
            return error_response(
                503, "Not ready: " + ", ".join(failing) + " unavailable.", "dependency_unavailable", checks
            )
        return Response({"status": "ok", "checks": checks})


class MetricsController(Controller):
    path = "/metrics"
    tags = ["Operations"]

    @get(
        "/",
        operation_id="Metrics",
        summary="Prometheus metrics",
        media_type=MediaType.TEXT,
        description="Prometheus text format: Litestar's HTTP series and WHAGO's domain series (see README).",
    )
    async def metrics(self, container: NamedDependency[Container]) -> Response:
        await refresh_gauges(container)
        # generate_latest walks in-memory collectors only: cheap, no I/O
        return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

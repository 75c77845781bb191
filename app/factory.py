"""The Litestar app factory: controllers per feature, one error mapping, lifespan-owned resources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from app.admin.controller import (
    AdminChipsController,
    AdminInstancesController,
    AdminProxiesController,
    AdminUsersController,
)
from app.auth.controller import AuthController
from app.auth.dependencies import provide_services, provide_user_id
from app.chips.controller import ChipsController
from app.core import db
from app.core.http_errors import EXCEPTION_HANDLERS
from app.core.services import Services
from app.events.controller import EventsController
from app.health.controller import HealthController
from app.plans.controller import PlansController
from app.webhooks.batcher import GroupCommitter
from app.webhooks.controller import WebhooksController
from app.settings import Settings, get_settings

logger = logging.getLogger("whago.app")

# Hooks later features (scheduler, WAHA pool, event bus, in-process worker) register on the
# service container: each is an async context manager factory taking (app, services).
LifespanHook = Callable[[Litestar, Services], contextlib.AbstractAsyncContextManager[Any]]


def create_app(
    settings: Settings | None = None,
    *,
    extra_route_handlers: Sequence[Any] = (),
    lifespan_hooks: Sequence[LifespanHook] = (),
) -> Litestar:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = Services.build(settings)
        app.state.services = services
        await db.start_pool(settings)
        await services.events.start()
        services.webhook_commits = GroupCommitter()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for hook in lifespan_hooks:
                    await stack.enter_async_context(hook(app, services))
                yield
        finally:
            await services.aclose()
            await db.close_pool()

    @get("/", include_in_schema=False)
    async def index() -> dict[str, str]:
        return {"name": "WHAGO", "docs": "/schema"}

    cors = None
    if settings.cors_origins:
        cors = CORSConfig(allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()])

    prometheus = PrometheusConfig(app_name="whago", prefix="whago", group_path=True, exclude=["/metrics"])

    return Litestar(
        route_handlers=[
            index,
            HealthController,
            AuthController,
            PlansController,
            ChipsController,
            AdminUsersController,
            AdminInstancesController,
            AdminProxiesController,
            AdminChipsController,
            WebhooksController,
            EventsController,
            PrometheusController,
            *extra_route_handlers,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "user_id": Provide(provide_user_id, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[prometheus.middleware],
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="WHAGO API",
            version="1.0.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        request_max_body_size=2 * 1024 * 1024,
        debug=False,
    )


def asgi_app() -> Litestar:
    """Entry point for ``uvicorn --factory app.factory:asgi_app``."""
    return create_app()

"""The Litestar app factory: controllers per feature, one error mapping, lifespan-owned resources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from app.admin.controller import (
    AdminAuditController,
    AdminChipsController,
    AdminInstancesController,
    AdminProxiesController,
    AdminUsersController,
)
from app.auth.controller import AuthController
from app.auth.dependencies import provide_stream_lease, provide_user_id
from app.chips.controller import ChipsController
from app.container import Container, provide_container, provide_event_hub, provide_settings
from app.core import db
from app.core.http_errors import EXCEPTION_HANDLERS
from app.core.request_id import request_id_middleware
from app.core.shutdown import on_stop_signal
from app.devtools.controller import DevChipsController
from app.events.controller import EventsController
from app.health.controller import HealthController, MetricsController
from app.messages.controller import MessagesController
from app.openapi import assets_router, document, render_plugin
from app.plans.controller import PlansController
from app.settings import Settings, get_settings
from app.web.controller import console_asset, console_fallback, console_index
from app.webhooks.batcher import GroupCommitter
from app.webhooks.controller import WebhooksController

logger = logging.getLogger("whago.app")

# Extra lifespan work on the built container (the in-process worker of ``whago dev``): each is
# an async context manager factory taking (app, container).
LifespanHook = Callable[[Litestar, Container], contextlib.AbstractAsyncContextManager[Any]]


def create_app(
    settings: Settings | None = None,
    *,
    extra_route_handlers: Sequence[Any] = (),
    lifespan_hooks: Sequence[LifespanHook] = (),
) -> Litestar:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The API receives webhooks: its writes of webhook events are group-committed.
        # the generated OpenAPI document, completed once before the first request (app.openapi)
        document(app.openapi_schema)
        container = Container.build(settings, webhook_commits=GroupCommitter())
        app.state.container = container
        await db.start_pool(settings)
        await container.events.start()

        def stopping() -> None:
            streams = container.events.close_streams()
            logger.info(
                "shutting down: %d event stream(s) closed, finishing in-flight requests (at most %ss)",
                streams,
                settings.worker_shutdown_grace_seconds,
            )
            # that one line says it; uvicorn's own shutdown chatter would repeat it
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

        restore_signals = on_stop_signal(stopping)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for hook in lifespan_hooks:
                    await stack.enter_async_context(hook(app, container))
                yield
        finally:
            restore_signals()
            container.events.close_streams()
            await container.aclose()
            await db.close_pool()

    cors = None
    if settings.cors_origins:
        cors = CORSConfig(allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()])

    prometheus = PrometheusConfig(app_name="whago", prefix="whago", group_path=True, exclude=["/metrics"])

    return Litestar(
        route_handlers=[
            console_index,
            console_asset,
            HealthController,
            AuthController,
            PlansController,
            ChipsController,
            MessagesController,
            AdminUsersController,
            AdminInstancesController,
            AdminProxiesController,
            AdminChipsController,
            AdminAuditController,
            WebhooksController,
            EventsController,
            MetricsController,
            assets_router(),
            # development only: the tenant's instance is an emulator (404 everywhere else)
            *([DevChipsController] if settings.env == "development" and settings.scheduler == "local" else []),
            *extra_route_handlers,
        ],
        # App-level: the container and what several features share. Each feature's service
        # provider is registered on its controller (app/<feature>/dependencies.py).
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "user_id": Provide(provide_user_id),
            "stream_lease": Provide(provide_stream_lease),
            "event_hub": Provide(provide_event_hub, sync_to_thread=False),
        },
        exception_handlers={
            **EXCEPTION_HANDLERS,
            # routing's 404: console paths (deep links, reloads) get the app, the rest JSON
            NotFoundException: console_fallback(EXCEPTION_HANDLERS[HTTPException]),
        },
        lifespan=[lifespan],
        middleware=[request_id_middleware, prometheus.middleware],
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="WHAGO API",
            version="1.0.0",
            path="/schema",
            description="WHAGO: WhatsApp sessions (chips) on WAHA, per tenant. Errors share one body (`Error`).",
            render_plugins=[render_plugin()],
        ),
        request_max_body_size=2 * 1024 * 1024,
        # the process's logging is app.core.logs (JSON or text, redacted), set up by the CLI: Litestar
        # must not replace the root handler with its own
        logging_config=None,
        debug=False,
    )


def asgi_app() -> Litestar:
    """Entry point for ``uvicorn --factory app.factory:asgi_app``."""
    return create_app()

"""A whole platform for worker tests: the API over real HTTP (it receives WAHA's webhooks), a
worker on the test's loop, and WAHA as emulators (static or local scheduler) or behind the
Nomad/Consul double (nomad scheduler)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from app.container import Container
from app.core import db
from app.factory import create_app
from app.settings import Settings, load_settings
from app.waha.emulator import EmulatorConfig
from app.worker.runner import running_worker
from tests.support.asgi_server import ServedApp, free_port
from tests.support.waiting import eventually

FAST_JOBS = {
    "WHAGO_JOB_ATTEMPTS": "4",
    "WHAGO_JOB_RETRY_DELAY_SECONDS": "0.2",
    "WHAGO_JOB_RETRY_MAX_DELAY_SECONDS": "0.5",
    "WHAGO_INSTANCE_READY_TIMEOUT_SECONDS": "15",
    "WHAGO_WORKER_CONCURRENCY": "20",
    "WHAGO_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
    "WHAGO_JOB_HEARTBEAT_SECONDS": "2",
}


def emulator_config(settings: Settings, **overrides: Any) -> EmulatorConfig:
    values = {
        "api_key": settings.waha_api_key,
        "boot_delay_seconds": 0.05,
        "qr_first_seconds": 60.0,
        "zombie_hang_seconds": 1.0,  # longer than the tests' probe timeout, short enough to stop fast
    }
    values.update(overrides)
    return EmulatorConfig(**values)


class Platform:
    """Handles for one test: settings, the served API, the container and a running worker."""

    def __init__(
        self, settings: Settings, api: ServedApp, container: Container, http: httpx.AsyncClient, env: dict[str, str]
    ) -> None:
        self.env = env  # the environment these settings came from (for worker subprocesses)
        self.settings = settings
        self.api = api
        self.container = container
        self.http = http

    async def tenant(self, plan: str = "free") -> dict:
        email = f"t-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.http.post("/api/v1/auth/register", json={"email": email, "password": "password-123"})
        assert response.status_code == 201, response.text
        body = response.json()
        if plan != "free":
            await db.fetch("UPDATE users SET plan = $2 WHERE id = $1", uuid.UUID(body["user"]["id"]), plan)
        body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
        return body

    async def create_chip(self, tenant: dict, alias: str = "chip", **extra: Any) -> dict:
        response = await self.http.post("/api/v1/chips", json={"alias": alias, **extra}, headers=tenant["headers"])
        assert response.status_code == 202, response.text
        return response.json()

    async def waiting_chip(self, plan: str = "free") -> tuple[dict, dict]:
        """A new tenant with one chip provisioned up to ``waiting_qr``."""
        tenant = await self.tenant(plan)
        chip = await self.create_chip(tenant)
        await self.wait_status(tenant, chip["id"], "waiting_qr")
        return tenant, chip

    async def chip(self, tenant: dict, chip_id: str) -> dict:
        return (await self.http.get(f"/api/v1/chips/{chip_id}", headers=tenant["headers"])).json()

    async def wait_status(self, tenant: dict, chip_id: str, status: str, timeout: float = 20.0) -> dict:
        last: dict = {}

        async def reached() -> dict | None:
            last.clear()
            last.update(await self.chip(tenant, chip_id))
            return last if last.get("status") == status else None

        try:
            return await eventually(reached, timeout, f"chip {chip_id} to reach {status}", interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {last}") from None


@contextlib.asynccontextmanager
async def platform(env: dict[str, str], *, worker: bool = True) -> AsyncIterator[Platform]:
    api_port = free_port()
    full_env = {**os.environ, **FAST_JOBS, "WHAGO_PUBLIC_URL": f"http://127.0.0.1:{api_port}", **env}
    settings = load_settings(full_env)
    api = ServedApp(create_app(settings), port=api_port).start()
    await db.start_pool(settings)
    container = Container.build(settings)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            if worker:
                async with running_worker(settings, container, with_cron=False):
                    yield Platform(settings, api, container, http, full_env)
            else:
                yield Platform(settings, api, container, http, full_env)
    finally:
        await container.aclose()
        api.stop()


def nomad_env(double) -> dict[str, str]:
    """Settings for the production (nomad) scheduler pointed at the Nomad/Consul double."""
    return {"WHAGO_SCHEDULER": "nomad", "WHAGO_NOMAD_ADDR": double.nomad_url, "WHAGO_CONSUL_ADDR": double.consul_url}

"""``whago dev`` adapter: one WAHA emulator per tenant, each an in-process uvicorn server on its
own free loopback port (an asyncio task on the running loop), so per-tenant isolation and address
discovery are exercised without Nomad while ``whago dev`` stays a single process.

Each emulator keeps its sessions in a file store under ``<WHAGO_DEV_STATE_DIR>/emulators/<job
id>/`` (WAHA's ``/app/.sessions`` volume): stopping and starting an instance, or restarting
``whago dev`` itself, restarts the sessions it was running, and linked chips come back WORKING
without a new QR. ``remove_instance`` deletes that directory: here the tenant's WAHA storage goes
with the instance (in production it is a database that outlives a Nomad purge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.core.tenant_keys import TenantKeys
from app.scheduler.base import InstanceState, TenantRef, job_id_for, normalize_user_id
from app.scheduler.errors import InstanceNotFound, InstanceNotReady, SchedulerUnavailable
from app.scheduler.nomad_job import api_key_env_value
from app.settings import Settings

logger = logging.getLogger("whago.scheduler.local")


class _QuietServer(uvicorn.Server):
    # The adapter owns the lifecycle: emulators must not grab SIGINT/SIGTERM from the dev process.
    @contextlib.contextmanager
    def capture_signals(self):
        yield


class _Running:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self.server = server
        self.task = task
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return not self.task.done()


class LocalScheduler:
    def __init__(
        self, settings: Settings, redis: Any | None = None, *, emulator_config: dict[str, Any] | None = None
    ) -> None:
        self.settings = settings
        self.ready_timeout = float(settings.instance_ready_timeout_seconds)
        self.emulator_config = dict(emulator_config or {})
        # One store for every tenant, keyed by worker id = job id: <state dir>/emulators/<job id>/.
        # emulator_config={"store": None} turns persistence off; another store object replaces it.
        if "store" in self.emulator_config:
            self.store: Any = self.emulator_config.pop("store")
        else:
            from app.waha.emulator.store import FileSessionStore

            self.store = FileSessionStore(Path(settings.dev_state_dir) / "emulators")
        self._running: dict[str, _Running] = {}
        self._stopped: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._http = httpx.AsyncClient(timeout=2.0)

    def _lock(self, user_id: str) -> asyncio.Lock:
        return self._locks.setdefault(user_id, asyncio.Lock())

    def _make_app(self, user_id: str) -> Any:
        # Imported lazily: the emulator is only needed when a tenant instance actually starts.
        from app.waha.emulator import EmulatorConfig, create_emulator_app

        options: dict[str, Any] = {
            # the tenant's own key, as a hash like the Nomad job's: another tenant's key is refused
            "api_key": api_key_env_value(TenantKeys(self.settings).api_key(user_id)),
            "boot_delay_seconds": self.settings.local_emulator_boot_delay_seconds,
            "worker_id": job_id_for(user_id),  # same WAHA_WORKER_ID as the Nomad job would get
            "engine": self.settings.waha_engine,
            "store": self.store,
        }
        options.update(self.emulator_config)
        config = EmulatorConfig(**options)
        return create_emulator_app(config)

    async def _start(self, user_id: str) -> _Running:
        # Bind the socket ourselves and hand it to uvicorn: no race between choosing a port and
        # listening on it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self._make_app(user_id), log_level="warning", lifespan="on", loop="asyncio")
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"waha-emulator-{user_id}")
        running = _Running(server, task, port)
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.01
        try:
            while True:
                if task.done():
                    raise SchedulerUnavailable(f"local WAHA emulator for {job_id_for(user_id)} failed to start")
                if server.started and await self._answers(running.base_url):
                    break
                if time.monotonic() >= deadline:
                    raise InstanceNotReady(job_id_for(user_id), "emulator not answering /ping", self.ready_timeout)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)
        except BaseException:
            await self._shutdown(running)
            sock.close()
            raise
        # No close on success: asyncio's server uses this very socket object (not a dup), and
        # closing it would free the fd under the running server.
        logger.info("local WAHA emulator for %s on %s", user_id, running.base_url)
        return running

    async def _answers(self, base_url: str) -> bool:
        try:
            resp = await self._http.get(base_url + "/ping")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    @staticmethod
    async def _shutdown(running: _Running) -> None:
        running.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(running.task), 10)
        except (TimeoutError, Exception):
            running.task.cancel()
            with contextlib.suppress(BaseException):
                await running.task

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        user_id = normalize_user_id(tenant.id)
        async with self._lock(user_id):
            running = self._running.get(user_id)
            if running is None or not running.alive:
                running = await self._start(user_id)
                self._running[user_id] = running
                self._stopped.discard(user_id)
            return InstanceState(
                user_id=user_id, job_id=job_id_for(user_id), status="running", base_url=running.base_url
            )

    async def get_instance(self, user_id: str) -> InstanceState | None:
        user_id = normalize_user_id(user_id)
        running = self._running.get(user_id)
        if running is not None:
            if running.alive:
                return InstanceState(
                    user_id=user_id, job_id=job_id_for(user_id), status="running", base_url=running.base_url
                )
            return InstanceState(user_id=user_id, job_id=job_id_for(user_id), status="dead", base_url=None)
        if user_id in self._stopped:
            return InstanceState(user_id=user_id, job_id=job_id_for(user_id), status="stopped", base_url=None)
        return None

    async def restart_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        async with self._lock(user_id):
            running = self._running.pop(user_id, None)
            if running is None and user_id not in self._stopped:
                raise InstanceNotFound(f"tenant has no instance {job_id_for(user_id)}")
            if running is not None:
                await self._shutdown(running)
            self._running[user_id] = await self._start(user_id)
            self._stopped.discard(user_id)

    async def stop_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        async with self._lock(user_id):
            running = self._running.pop(user_id, None)
            if running is not None:
                await self._shutdown(running)
                self._stopped.add(user_id)

    async def remove_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        async with self._lock(user_id):
            running = self._running.pop(user_id, None)
            self._stopped.discard(user_id)
            if running is not None:
                await self._shutdown(running)
            if self.store is not None:
                # after the shutdown: the emulator must not write again behind us
                self.store.clear(job_id_for(user_id))

    async def list_instances(self) -> list[InstanceState]:
        out = [
            InstanceState(
                user_id=u,
                job_id=job_id_for(u),
                status="running" if r.alive else "dead",
                base_url=r.base_url if r.alive else None,
            )
            for u, r in sorted(self._running.items())
        ]
        out += [
            InstanceState(user_id=u, job_id=job_id_for(u), status="stopped", base_url=None)
            for u in sorted(self._stopped)
        ]
        return out

    async def ping(self) -> None:
        """Nothing remote to ask: the configuration is the whole scheduler."""

    async def invalidate(self, user_id: str) -> None:
        return None  # addresses live in memory and are always current

    async def close(self) -> None:
        running, self._running = list(self._running.values()), {}
        self._stopped.clear()
        await asyncio.gather(*(self._shutdown(r) for r in running), return_exceptions=True)
        await self._http.aclose()

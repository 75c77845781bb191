"""Production adapter: one Nomad ``service`` job per tenant, healthy address found through Consul.

* Nomad calls go through python-nomad, which is synchronous (requests): every call runs in a
  bounded ``ThreadPoolExecutor`` with one client (one ``requests.Session``) per worker thread, so
  the event loop never blocks and sessions are never shared between threads.
* Consul is called with ``httpx.AsyncClient`` (only the health endpoint is needed).
* Readiness = a running allocation whose ``http`` port is registered in Consul with *our* check
  passing. ``?passing`` alone is not enough: right after registration Consul can return the
  instance with only the node's ``serfHealth`` check (nomad#7736), and after a reschedule the old
  instance may linger for a moment.
* Every failure becomes a typed error from ``app.scheduler.errors``; nothing is cached unless the
  instance was seen healthy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import msgspec
import nomad
import nomad.api.exceptions as nomad_exc
import requests

from app.scheduler.base import (
    JOB_PREFIX,
    InstanceState,
    TenantRef,
    job_id_for,
    normalize_user_id,
    user_id_from_job_id,
)
from app.scheduler.cache import AddressCache
from app.scheduler.errors import (
    InstanceNotFound,
    InstanceNotReady,
    JobRejected,
    PlacementFailed,
    SchedulerUnavailable,
)
from app.scheduler.nomad_job import CHECK_NAME, PORT_LABEL, SPEC_HASH_META, build_job
from app.settings import Settings

logger = logging.getLogger("whago.scheduler.nomad")
T = TypeVar("T")

_NOT_FOUND = object()
_BACKOFF_START = 0.05
_BACKOFF_MAX = 2.0


def _safe_origin(url: str) -> str:
    """scheme://host:port of a URL, without any userinfo, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme or 'http'}://{host}" + (f":{parts.port}" if parts.port else "")


def _http_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"http://{host}:{port}"


def _describe_alloc(alloc: dict[str, Any]) -> str:
    status = alloc.get("ClientStatus") or "unknown"
    detail = alloc.get("ClientDescription") or ""
    # The newest task event usually says why (image pull failure, OOM, ...).
    for state in (alloc.get("TaskStates") or {}).values():
        events = (state or {}).get("Events") or []
        if events:
            last = events[-1]
            detail = last.get("DisplayMessage") or last.get("DriverError") or last.get("Type") or detail
    return f"{status} ({detail})" if detail else status


def _describe_metric(group: str, metric: dict[str, Any]) -> str:
    parts = [f"group {group!r}: {metric.get('NodesEvaluated', 0)} node(s) evaluated"]
    available = metric.get("NodesAvailable") or {}
    if available and not any(available.values()):
        parts.append("no nodes available in datacenters " + ", ".join(sorted(available)))
    for label, key in (
        ("exhausted", "DimensionExhausted"),
        ("filtered by constraint", "ConstraintFiltered"),
        ("class exhausted", "ClassExhausted"),
    ):
        items = metric.get(key) or {}
        if items:
            parts.append(f"{label}: " + ", ".join(f"{k} ({v})" for k, v in sorted(items.items())))
    quota = metric.get("QuotaExhausted") or []
    if quota:
        parts.append("quota exhausted: " + ", ".join(quota))
    return "; ".join(parts)


class NomadScheduler:
    def __init__(self, settings: Settings, redis: Any | None) -> None:
        self.settings = settings
        self.namespace = settings.nomad_namespace or "default"
        self.timeout = float(settings.nomad_timeout_seconds)
        self.ready_timeout = float(settings.instance_ready_timeout_seconds)
        self.page_size = settings.nomad_list_page_size
        self.cache = AddressCache(
            redis, settings.instance_address_cache_seconds, settings.redis_timeout_seconds
        )
        self._nomad_origin = _safe_origin(settings.nomad_addr)
        self._consul_origin = _safe_origin(settings.consul_addr)
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, int(settings.nomad_threads)), thread_name_prefix="whago-nomad"
        )
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        headers = {"X-Consul-Token": settings.consul_token} if settings.consul_token else {}
        self._consul = httpx.AsyncClient(
            base_url=settings.consul_addr.rstrip("/"), headers=headers, timeout=self.timeout
        )
        self._flights: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ Nomad plumbing
    def _client(self) -> nomad.Nomad:
        client = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(session)
            client = nomad.Nomad(
                address=self.settings.nomad_addr.rstrip("/"),
                token=self.settings.nomad_token or None,
                namespace=self.namespace,
                region=self.settings.nomad_region or None,
                timeout=self.timeout,
                verify=True,  # python-nomad defaults to *not* verifying TLS
                session=session,
            )
            self._local.client = client
        return client

    def _translate(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, nomad_exc.URLNotAuthorizedNomadException):
            return SchedulerUnavailable(f"Nomad ACL token rejected (403) while {what}; check WHAGO_NOMAD_TOKEN")
        if isinstance(exc, nomad_exc.BadRequestNomadException):
            text = getattr(exc.nomad_resp, "text", "") or ""
            return JobRejected(f"Nomad rejected the request while {what}: {text.strip()[:500]}")
        if isinstance(exc, nomad_exc.BaseNomadException):
            resp = exc.nomad_resp
            if isinstance(resp, requests.Response):
                return SchedulerUnavailable(f"Nomad answered HTTP {resp.status_code} while {what}")
            if isinstance(resp, requests.Timeout):
                return SchedulerUnavailable(f"Nomad at {self._nomad_origin} timed out after {self.timeout:g}s while {what}")
            return SchedulerUnavailable(f"Nomad unreachable at {self._nomad_origin} while {what}")
        if isinstance(exc, (ValueError, msgspec.DecodeError)):
            return SchedulerUnavailable(f"Nomad returned an unreadable response while {what}")
        return SchedulerUnavailable(f"Nomad call failed while {what}: {type(exc).__name__}")

    async def _nomad(self, what: str, fn: Callable[[nomad.Nomad], T], *, missing_ok: bool = False) -> T | Any:
        """Run ``fn(client)`` in the bounded pool; map every failure to a typed error.
        With ``missing_ok`` a 404 returns ``_NOT_FOUND`` instead of raising."""

        def call() -> T | Any:
            try:
                return fn(self._client())
            except nomad_exc.URLNotFoundNomadException:
                if missing_ok:
                    return _NOT_FOUND
                raise

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except nomad_exc.URLNotFoundNomadException as exc:
            raise SchedulerUnavailable(f"Nomad answered 404 while {what}") from exc
        except RuntimeError as exc:
            if "shutdown" in str(exc):  # executor closed under us
                raise SchedulerUnavailable("scheduler is shutting down") from None
            raise self._translate(exc, what) from None
        except Exception as exc:
            raise self._translate(exc, what) from None

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        return msgspec.json.decode(resp.content)

    async def _read_job(self, job_id: str) -> dict[str, Any] | None:
        result = await self._nomad(
            f"reading job {job_id}",
            lambda c: self._json(c.job.request(job_id, method="get")),
            missing_ok=True,
        )
        return None if result is _NOT_FOUND else result

    async def _register(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = body["Job"]["ID"]
        return await self._nomad(
            f"registering job {job_id}", lambda c: self._json(c.jobs.request(method="post", json=body))
        )

    async def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        result = await self._nomad(
            f"listing allocations of {job_id}",
            lambda c: self._json(c.job.request(job_id, "allocations", method="get")),
            missing_ok=True,
        )
        return [] if result is _NOT_FOUND else list(result or [])

    async def _allocation(self, alloc_id: str) -> dict[str, Any] | None:
        result = await self._nomad(
            f"reading allocation {alloc_id}",
            lambda c: self._json(c.allocation.request(alloc_id, method="get")),
            missing_ok=True,
        )
        return None if result is _NOT_FOUND else result

    async def _evaluations(self, job_id: str) -> list[dict[str, Any]]:
        result = await self._nomad(
            f"listing evaluations of {job_id}",
            lambda c: self._json(c.job.request(job_id, "evaluations", method="get")),
            missing_ok=True,
        )
        return [] if result is _NOT_FOUND else list(result or [])

    async def _deregister(self, job_id: str, purge: bool) -> None:
        params = {"purge": "true"} if purge else {}
        await self._nomad(
            f"deregistering job {job_id}",
            lambda c: c.job.request(job_id, method="delete", params=dict(params)),
            missing_ok=True,
        )

    # ------------------------------------------------------------------ Consul
    async def _healthy_endpoints(self, job_id: str, user_id: str) -> list[tuple[str, int]]:
        """(address, port) of Consul instances of the tenant's service whose own check passes."""
        path = f"/v1/health/service/{quote(job_id, safe='')}"
        what = f"reading Consul health of {job_id}"
        try:
            resp = await self._consul.get(path, params={"passing": "true"})
        except httpx.TimeoutException:
            raise SchedulerUnavailable(
                f"Consul at {self._consul_origin} timed out after {self.timeout:g}s while {what}"
            ) from None
        except httpx.HTTPError:
            raise SchedulerUnavailable(f"Consul unreachable at {self._consul_origin} while {what}") from None
        if resp.status_code == 403:
            raise SchedulerUnavailable(f"Consul ACL token rejected (403) while {what}; check WHAGO_CONSUL_TOKEN")
        if resp.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {resp.status_code} while {what}")
        try:
            entries = msgspec.json.decode(resp.content)
        except msgspec.DecodeError:
            raise SchedulerUnavailable(f"Consul returned an unreadable response while {what}") from None
        found: list[tuple[str, int]] = []
        for entry in entries or []:
            service = entry.get("Service") or {}
            if (service.get("Meta") or {}).get("whago_user_id") != user_id:
                continue  # someone else's registration under our name: never route a tenant there
            own_check_passing = any(
                c.get("Name") == CHECK_NAME
                and c.get("ServiceID") == service.get("ID")
                and c.get("Status") == "passing"
                for c in entry.get("Checks") or []
            )
            if not own_check_passing:
                continue
            address = service.get("Address") or (entry.get("Node") or {}).get("Address")
            port = service.get("Port")
            if address and isinstance(port, int) and port > 0:
                found.append((address, port))
        return found

    # ------------------------------------------------------------------ readiness
    @staticmethod
    def _alloc_endpoint(alloc: dict[str, Any]) -> tuple[str, int] | None:
        shared = (alloc.get("AllocatedResources") or {}).get("Shared") or {}
        for port in shared.get("Ports") or []:
            if port.get("Label") == PORT_LABEL and port.get("Value"):
                return port.get("HostIP") or "", int(port["Value"])
        for net in shared.get("Networks") or []:
            for port in net.get("DynamicPorts") or []:
                if port.get("Label") == PORT_LABEL and port.get("Value"):
                    return net.get("IP") or "", int(port["Value"])
        return None

    async def _probe(
        self, job_id: str, user_id: str, ports: dict[str, tuple[str, int] | None]
    ) -> tuple[str | None, str, list[dict[str, Any]]]:
        """One readiness look: (base_url or None, last allocation status, live allocations)."""
        allocs = await self._allocations(job_id)
        wanted = sorted(
            (a for a in allocs if a.get("DesiredStatus") == "run"),
            key=lambda a: a.get("CreateIndex") or 0,
            reverse=True,
        )
        last = _describe_alloc(wanted[0]) if wanted else (_describe_alloc(allocs[-1]) if allocs else "no allocation yet")
        running = [a for a in wanted if a.get("ClientStatus") == "running"]
        live = [a for a in wanted if a.get("ClientStatus") in ("pending", "running")]
        if not running:
            return None, last, live
        healthy = await self._healthy_endpoints(job_id, user_id)
        if not healthy:
            return None, last, live
        for alloc in running:
            alloc_id = alloc["ID"]
            if alloc_id not in ports:
                # The list stub has no ports; the detail has AllocatedResources.Shared.Ports.
                detail = await self._allocation(alloc_id)
                ports[alloc_id] = self._alloc_endpoint(detail) if detail else None
            endpoint = ports[alloc_id]
            if endpoint is None:
                continue
            host_ip, port = endpoint
            for address, consul_port in healthy:
                if consul_port == port and (not host_ip or host_ip in ("0.0.0.0", "::") or host_ip == address):
                    return _http_url(address, port), last, live
        return None, last, live

    async def _placement_failure(self, job_id: str) -> str | None:
        evals = await self._evaluations(job_id)
        if not evals:
            return None
        evals.sort(key=lambda e: e.get("CreateIndex") or 0, reverse=True)
        newest = evals[0]
        candidates = [newest]
        if newest.get("Status") == "blocked" and not newest.get("FailedTGAllocs"):
            # The blocked eval is the follow-up of the one that recorded the failure.
            candidates += [e for e in evals if e.get("BlockedEval") == newest.get("ID")]
        for ev in candidates:
            failed = ev.get("FailedTGAllocs") or {}
            if failed:
                return " | ".join(_describe_metric(g, m or {}) for g, m in sorted(failed.items()))
            if ev.get("Status") == "failed":
                return ev.get("StatusDescription") or "evaluation failed"
        return None

    async def _wait_ready(self, job_id: str, user_id: str) -> str:
        started = time.monotonic()
        deadline = started + self.ready_timeout
        delay = _BACKOFF_START
        ports: dict[str, tuple[str, int] | None] = {}
        last = "no allocation yet"
        while True:
            url, last, live = await self._probe(job_id, user_id, ports)
            if url:
                return url
            if not live:
                reason = await self._placement_failure(job_id)
                if reason:
                    raise PlacementFailed(job_id, reason)
            now = time.monotonic()
            if now >= deadline:
                raise InstanceNotReady(job_id, last, self.ready_timeout)
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _BACKOFF_MAX)

    # ------------------------------------------------------------------ interface
    async def ping(self) -> None:
        """Readiness: Nomad and Consul both answer (their leader endpoints)."""
        await self._nomad("reading the Nomad leader", lambda c: c.status.leader.get_leader())
        try:
            resp = await self._consul.get("/v1/status/leader")
        except httpx.HTTPError:
            raise SchedulerUnavailable(f"Consul unreachable at {self._consul_origin}") from None
        if resp.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {resp.status_code} to a leader check")

    def _flight(self, user_id: str) -> asyncio.Lock:
        # Coalesces concurrent ensures of one tenant within this process (saves Nomad calls).
        # Not what keeps one job per tenant: that is Nomad's (registration is idempotent by id).
        lock = self._flights.get(user_id)
        if lock is None:
            lock = self._flights[user_id] = asyncio.Lock()
        return lock

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        user_id = normalize_user_id(tenant.id)
        job_id = job_id_for(user_id)
        cached = await self.cache.get(user_id)
        if cached:
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
        body = build_job(self.settings, tenant)  # bad plan -> ValidationFailed before any call
        async with self._flight(user_id):
            cached = await self.cache.get(user_id)
            if cached:
                return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
            job = await self._read_job(job_id)
            wanted_hash = body["Job"]["Meta"][SPEC_HASH_META]
            if (
                job is None
                or job.get("Stop")
                or job.get("Status") == "dead"
                or (job.get("Meta") or {}).get(SPEC_HASH_META) != wanted_hash
            ):
                await self._register(body)
                logger.info("registered Nomad job %s", job_id)
            url = await self._wait_ready(job_id, user_id)
            await self.cache.set(user_id, job_id, url)
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=url)

    async def get_instance(self, user_id: str) -> InstanceState | None:
        user_id = normalize_user_id(user_id)
        job_id = job_id_for(user_id)
        cached = await self.cache.get(user_id)
        if cached:
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
        job = await self._read_job(job_id)
        if job is None:
            return None
        if job.get("Stop"):
            return InstanceState(user_id=user_id, job_id=job_id, status="stopped", base_url=None)
        status = job.get("Status")
        if status == "running":
            url, _, _ = await self._probe(job_id, user_id, {})
            if url:
                await self.cache.set(user_id, job_id, url)
                return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=url)
            return InstanceState(user_id=user_id, job_id=job_id, status="pending", base_url=None)
        if status in ("pending", "dead"):
            return InstanceState(user_id=user_id, job_id=job_id, status=status, base_url=None)
        return InstanceState(user_id=user_id, job_id=job_id, status="unknown", base_url=None)

    async def restart_instance(self, user_id: str) -> None:
        """Replace the running allocation(s) (Nomad places a fresh one, maybe on another node and
        port); a stopped job is started again from its stored definition."""
        user_id = normalize_user_id(user_id)
        job_id = job_id_for(user_id)
        job = await self._read_job(job_id)
        if job is None:
            raise InstanceNotFound(f"tenant has no Nomad job {job_id}")
        await self.cache.delete(user_id)
        if job.get("Stop") or job.get("Status") == "dead":
            job["Stop"] = False
            await self._register({"Job": job})
            return
        for alloc in await self._allocations(job_id):
            if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") in ("pending", "running"):
                alloc_id = alloc["ID"]
                await self._nomad(
                    f"stopping allocation {alloc_id} of {job_id}",
                    lambda c, a=alloc_id: self._json(c.allocation.request(a, "stop", method="post")),
                    missing_ok=True,
                )
        await self.cache.delete(user_id)

    async def stop_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        await self._deregister(job_id_for(user_id), purge=False)
        await self.cache.delete(user_id)

    async def remove_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        await self._deregister(job_id_for(user_id), purge=True)
        await self.cache.delete(user_id)

    async def invalidate(self, user_id: str) -> None:
        await self.cache.delete(normalize_user_id(user_id))

    async def list_instances(self) -> list[InstanceState]:
        """All tenant jobs, one Nomad request per page (prefix listing), plus one Redis MGET per page
        for addresses already known. Does not ask Consul per job: a running job without a cached
        address comes back with ``base_url=None``."""
        instances: list[InstanceState] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"prefix": JOB_PREFIX, "per_page": self.page_size}
            if token:
                params["next_token"] = token

            def page(c: nomad.Nomad, p: dict[str, Any] = params) -> tuple[list[dict[str, Any]], str | None]:
                resp = c.jobs.request(method="get", params=dict(p))
                return self._json(resp), resp.headers.get("X-Nomad-NextToken") or None

            stubs, token = await self._nomad("listing tenant jobs", page)
            batch: list[InstanceState] = []
            for stub in stubs or []:
                job_id = stub.get("ID") or ""
                user_id = user_id_from_job_id(job_id)
                if not user_id:
                    continue
                if stub.get("Stop"):
                    status = "stopped"
                else:
                    status = stub.get("Status") or "unknown"
                    if status not in ("running", "pending", "dead"):
                        status = "unknown"
                batch.append(InstanceState(user_id=user_id, job_id=job_id, status=status, base_url=None))
            urls = await self.cache.get_many([i.user_id for i in batch if i.status == "running"])
            for inst in batch:
                inst.base_url = urls.get(inst.user_id)
            instances.extend(batch)
            if not token:
                return instances

    async def close(self) -> None:
        await self._consul.aclose()
        await asyncio.to_thread(functools.partial(self._executor.shutdown, wait=True, cancel_futures=True))
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

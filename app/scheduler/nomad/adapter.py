"""Production adapter: one Nomad ``service`` job per tenant, healthy address found through Consul.

The pieces: ``transport`` (python-nomad in a thread pool, typed errors), ``consul`` (health
lookups over httpx) and ``diagnostics`` (pure readings of their answers). This module only
orchestrates them:

* Readiness = a running allocation whose ``http`` port is registered in Consul with *our* check
  passing; after a reschedule the old instance may linger for a moment, hence the port match.
* Every failure becomes a typed error from ``app.scheduler.errors``; nothing is cached unless the
  instance was seen healthy.
* Updates are stable: Nomad's plan endpoint decides whether the job changed (no digest in the
  job), registration is a check-and-set on ``JobModifyIndex``, and a job written by a newer job
  generation (``GENERATION_META``) is left alone, so two WHAGO versions during a rolling deploy
  never flip a tenant between their specs.
* Readiness waits with blocking queries (Nomad's allocation list, Consul's health), not polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

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
    JobModifyConflict,
    PlacementFailed,
    SchedulerUnavailable,
)
from app.scheduler.locks import KeyedLocks
from app.scheduler.nomad import diagnostics
from app.scheduler.nomad.consul import ConsulDiscovery
from app.scheduler.nomad.transport import NomadTransport
from app.scheduler.nomad_job import GENERATION, GENERATION_META, build_job, secret_items, variable_path
from app.settings import Settings

logger = logging.getLogger("whago.scheduler.nomad")

# Longest single blocking query while waiting for readiness: bounds how late a failed allocation
# is noticed while Consul is quiet.
_BLOCK_WAIT = 5.0
# Floor between two readiness rounds (Consul's advice: rate-limit blocking loops); an index
# that moves on every change of the cluster must not turn the wait into a busy loop.
_MIN_ROUND = 0.05
_CAS_ATTEMPTS = 3
# allocation id -> its http port (host IP, port), or None if it has none; read once per wait
PortMemo = dict[str, tuple[str, int] | None]


class NomadScheduler:
    def __init__(self, settings: Settings, redis: Any | None) -> None:
        self.settings = settings
        self.ready_timeout = float(settings.instance_ready_timeout_seconds)
        self.page_size = settings.nomad_list_page_size
        self.cache = AddressCache(redis, settings.instance_address_cache_seconds, settings.redis_timeout_seconds)
        self.nomad = NomadTransport(settings)
        self.consul = ConsulDiscovery(settings)
        # Coalesces concurrent ensures of one tenant within this process (saves Nomad calls).
        # Not what keeps one job per tenant: that is Nomad's (registration is idempotent by id).
        self._flights = KeyedLocks()
        self.generation = GENERATION  # of the jobs this WHAGO writes (see nomad_job)

    # ------------------------------------------------------------------ Nomad reads and writes
    async def _read_job(self, job_id: str) -> dict[str, Any] | None:
        return await self.nomad.read(f"reading job {job_id}", "job", job_id)

    async def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        return (await self._allocations_after(job_id, 0, 0.0))[0]

    async def _allocations_after(self, job_id: str, index: int, wait: float) -> tuple[list[dict[str, Any]], int]:
        """The job's allocations and Nomad's index; a blocking query when ``index`` > 0."""
        params: dict[str, str | int] = {}
        timeout = None
        if index > 0 and wait > 0:
            params = {"index": index, "wait": f"{max(1, int(wait * 1000))}ms"}
            timeout = self.nomad.timeout + wait * (1 + 1 / 16)  # Nomad adds up to wait/16 of jitter
        reply = await self.nomad.request(
            f"listing allocations of {job_id}",
            "job",
            job_id,
            "allocations",
            params=params or None,
            missing_ok=True,
            timeout=timeout,
        )
        return list(reply.data or []), reply.index

    async def _register(self, body: dict[str, Any], modify_index: int | None = None) -> None:
        """Register; with ``modify_index`` a check-and-set (``EnforceIndex``): 0 = only if new,
        N = only if nobody registered since we read ``JobModifyIndex`` N."""
        job_id = body["Job"]["ID"]
        if modify_index is not None:
            body = {**body, "EnforceIndex": True, "JobModifyIndex": modify_index}
        await self.nomad.request(f"registering job {job_id}", "jobs", method="post", body=body, submits_job=True)

    async def _changed(self, job_id: str, body: dict[str, Any]) -> bool:
        """Nomad's own opinion (plan with diff) of whether ``body`` differs from the stored job:
        it canonicalises both, so defaults it fills in never count as a change."""
        reply = await self.nomad.request(
            f"planning job {job_id}",
            "job",
            job_id,
            "plan",
            method="post",
            body={"Job": body["Job"], "Diff": True},
            submits_job=True,
        )
        diff = (reply.data or {}).get("Diff") or {}
        return diff.get("Type", "Edited") != "None"

    async def _converge(self, job_id: str, body: dict[str, Any]) -> None:
        """Make the stored job ours, unless a newer WHAGO wrote it. Check-and-set: a concurrent
        writer makes us read and decide again (a few times, then SchedulerUnavailable)."""
        for attempt in range(_CAS_ATTEMPTS):
            job = await self._read_job(job_id)
            try:
                if job is None:
                    await self._register(body, modify_index=0)
                    logger.info("registered Nomad job %s", job_id)
                    return
                index = int(job.get("JobModifyIndex") or 0)
                stopped = bool(job.get("Stop")) or job.get("Status") == "dead"
                if _generation(job) > self.generation:
                    # A newer WHAGO (rolling deploy) owns this spec: never roll it back. Start it
                    # from its own stored definition if it was stopped.
                    if stopped:
                        await self._register({"Job": _stored_spec(job, stop=False)}, modify_index=index)
                        logger.info("restarted Nomad job %s with its newer stored spec", job_id)
                    return
                if stopped or await self._changed(job_id, body):
                    await self._register(body, modify_index=index)
                    logger.info("updated Nomad job %s", job_id)
                return
            except JobModifyConflict:
                if attempt == _CAS_ATTEMPTS - 1:
                    raise
                logger.info("job %s changed concurrently; reading it again", job_id)

    async def _write_secrets(self, job_id: str, user_id: str) -> None:
        """The job's Variable (``nomad/jobs/<job id>``): the task's secrets, never in the spec.
        Written only when it differs, so an unchanged tenant costs one read."""
        path = variable_path(job_id)
        items = secret_items(self.settings, user_id)
        current = await self.nomad.read(f"reading variable {path}", "variable", path)
        if isinstance(current, dict) and current.get("Items") == items:
            return
        body = {"Namespace": self.nomad.namespace, "Path": path, "Items": items}
        await self.nomad.request(f"writing variable {path}", "variable", path, method="put", body=body)

    async def _deregister(self, job_id: str, purge: bool) -> None:
        await self.nomad.request(
            f"deregistering job {job_id}",
            "job",
            job_id,
            method="delete",
            params={"purge": "true"} if purge else None,
            missing_ok=True,
        )

    # ------------------------------------------------------------------ readiness
    async def _probe(self, job_id: str, user_id: str, ports: PortMemo) -> tuple[str | None, diagnostics.AllocationView]:
        """One readiness look: (base_url or None, the job's allocations)."""
        view = diagnostics.allocation_view(await self._allocations(job_id))
        if not view.running:
            return None, view
        healthy = await self.consul.healthy_endpoints(job_id, user_id)
        return await self._match(view, healthy, ports), view

    async def _match(
        self, view: diagnostics.AllocationView, healthy: list[diagnostics.Endpoint], ports: PortMemo
    ) -> str | None:
        """The base URL of a running allocation whose port Consul lists as healthy."""
        if not healthy:
            return None
        for alloc in view.running:
            alloc_id = alloc["ID"]
            if alloc_id not in ports:
                # The list stub has no ports; the detail has AllocatedResources.Shared.Ports.
                detail = await self.nomad.read(f"reading allocation {alloc_id}", "allocation", alloc_id)
                ports[alloc_id] = diagnostics.alloc_endpoint(detail) if detail else None
            endpoint = ports[alloc_id]
            url = diagnostics.matching_url(endpoint, healthy) if endpoint else None
            if url:
                return url
        return None

    async def _placement_failure(self, job_id: str) -> str | None:
        evals = await self.nomad.read(f"listing evaluations of {job_id}", "job", job_id, "evaluations")
        return diagnostics.placement_failure(list(evals or []))

    async def _wait_ready(self, job_id: str, user_id: str) -> str:
        """Until our check passes on the job's running allocation. Each round is one blocking
        query: on Consul's health once an allocation runs (returns when a check changes), on
        Nomad's allocation list before (returns when an allocation changes)."""
        deadline = time.monotonic() + self.ready_timeout
        ports: PortMemo = {}
        nomad_index = consul_index = 0
        blocked_on_nomad = False
        while True:
            round_start = time.monotonic()
            wait = max(0.0, min(_BLOCK_WAIT, deadline - round_start))
            allocs, new_index = await self._allocations_after(job_id, nomad_index if blocked_on_nomad else 0, wait)
            nomad_index = new_index if new_index >= nomad_index else 0  # an index going back: reset
            view = diagnostics.allocation_view(allocs)
            blocked_on_nomad = not view.running
            if view.running:
                wait = max(0.0, min(_BLOCK_WAIT, deadline - time.monotonic()))
                answer = await self.consul.health(job_id, user_id, index=consul_index, wait=wait)
                consul_index = answer.index if answer.index >= consul_index else 0
                url = await self._match(view, answer.endpoints, ports)
                if url:
                    return url
            elif not view.live:  # nothing pending or running: ask Nomad whether it gave up
                reason = await self._placement_failure(job_id)
                if reason:
                    raise PlacementFailed(job_id, reason)
            now = time.monotonic()
            if now >= deadline:
                raise InstanceNotReady(job_id, view.last_status, self.ready_timeout)
            if now - round_start < _MIN_ROUND:
                await asyncio.sleep(min(_MIN_ROUND, deadline - now))

    # ------------------------------------------------------------------ interface
    async def ping(self) -> None:
        """Readiness: Nomad has a leader and accepts our token for what WHAGO does most (listing
        tenant jobs: ``list-jobs``); Consul likewise (see ``ConsulDiscovery.ping``). The leader
        endpoints ignore tokens, hence the one authenticated call."""
        leader = await self.nomad.request("reading the Nomad leader", "status.leader")
        if not leader.data:
            raise SchedulerUnavailable("Nomad has no cluster leader")
        await self.nomad.request("listing tenant jobs", "jobs", params={"prefix": JOB_PREFIX, "per_page": 1})
        await self.consul.ping()

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        user_id = normalize_user_id(tenant.id)
        job_id = job_id_for(user_id)
        cached = await self.cache.get(user_id)
        if cached:
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
        body = build_job(self.settings, tenant, self.generation)  # bad plan -> ValidationFailed before any call
        async with self._flights.hold(user_id):
            cached = await self.cache.get(user_id)
            if cached:
                return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
            await self._write_secrets(job_id, user_id)  # before the job: its template needs it
            await self._converge(job_id, body)
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
            url, _ = await self._probe(job_id, user_id, {})
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
            await self._register(
                {"Job": _stored_spec(job, stop=False)}, modify_index=int(job.get("JobModifyIndex") or 0)
            )
            return
        for alloc in await self._allocations(job_id):
            if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") in ("pending", "running"):
                alloc_id = alloc["ID"]
                await self.nomad.request(
                    f"stopping allocation {alloc_id} of {job_id}",
                    "allocation",
                    alloc_id,
                    "stop",
                    method="post",
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
        path = variable_path(job_id_for(user_id))
        await self.nomad.request(f"deleting variable {path}", "variable", path, method="delete", missing_ok=True)
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
            params: dict[str, str | int] = {"prefix": JOB_PREFIX, "per_page": self.page_size}
            if token:
                params["next_token"] = token
            page = await self.nomad.request("listing tenant jobs", "jobs", params=params)
            token = page.next_token
            batch = [_listed(stub) for stub in page.data or []]
            found = [i for i in batch if i is not None]
            urls = await self.cache.get_many([i.user_id for i in found if i.status == "running"])
            for inst in found:
                inst.base_url = urls.get(inst.user_id)
            instances.extend(found)
            if not token:
                return instances

    async def close(self) -> None:
        await self.consul.aclose()
        await self.nomad.close()


# Read-only fields of a job as Nomad returns it: not part of a registration.
_SERVER_FIELDS = frozenset(
    {"Status", "StatusDescription", "Version", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime", "Stable"}
)


def _stored_spec(job: dict[str, Any], *, stop: bool) -> dict[str, Any]:
    spec = {k: v for k, v in job.items() if k not in _SERVER_FIELDS}
    spec["Stop"] = stop
    return spec


def _generation(job: dict[str, Any]) -> int:
    try:
        return int((job.get("Meta") or {}).get(GENERATION_META) or 0)
    except ValueError:
        return 0


def _listed(stub: dict[str, Any]) -> InstanceState | None:
    """A job-list stub as an instance (address unknown), or None if it is not a tenant job."""
    job_id = stub.get("ID") or ""
    user_id = user_id_from_job_id(job_id)
    if not user_id:
        return None
    if stub.get("Stop"):
        status = "stopped"
    else:
        status = stub.get("Status") or "unknown"
        if status not in ("running", "pending", "dead"):
            status = "unknown"
    return InstanceState(user_id=user_id, job_id=job_id, status=status, base_url=None)

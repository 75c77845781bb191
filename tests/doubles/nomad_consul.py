"""A Nomad + Consul test double: two real HTTP servers on loopback.

Nomad endpoints (what the scheduler adapter uses):

- ``POST|PUT /v1/jobs`` and ``POST|PUT /v1/job/:id``: register/update, body validated strictly
  against the ``Job`` schema of ``nomad-openapi.yaml`` (see ``nomad_schema``): 400 for what does
  not decode (plus the documented test-only strictness), **500 + multierror text** for what
  ``Job.Validate`` refuses or an unknown node pool, as a real agent answers. ``EnforceIndex`` /
  ``JobModifyIndex`` check-and-set (a conflict is a 500 "Enforcing job modify index ...").
- ``POST|PUT /v1/job/:id/plan``: same validation, then ``Diff.Type`` None/Added/Edited.
- ``GET /v1/jobs?prefix=&per_page=&next_token=&meta=``: stubs sorted by ID, paged, token
  ``<namespace>.<id>`` in ``X-Nomad-NextToken``.
- ``GET /v1/job/:id``, ``GET /v1/job/:id/allocations``, ``GET /v1/job/:id/evaluations``,
  ``DELETE /v1/job/:id[?purge=true]`` (200 with an evaluation even for an unknown job).
- Constraints the one node fails: accepted, evaluation blocked with
  ``FailedTGAllocs.ConstraintFiltered`` (the blocked eval carries ``FailedTGAllocs`` too).
- ``GET /v1/allocation/:id`` (with ``AllocatedResources.Shared.Ports``),
  ``POST|PUT /v1/allocation/:id/stop`` (replacement placed on a new port).

Consul: ``GET /v1/health/service/:name[?passing]``, ``GET /v1/catalog/nodes``.

Both: ``GET /v1/status/leader`` (no token needed, like the real ones; ``leader = ""`` plays an
election) and blocking queries (``?index=&wait=`` on the GET endpoints above; one state index).

Group services are registered in Consul at placement, before the task runs (check critical);
task services once the task runs.

"Running" a job starts one WAHA emulator per allocation on a free loopback port (its "dynamic
port"), then registers the group's services in the Consul double the way Nomad does: first with
only the node's ``serfHealth`` check (the registration gap of nomad#7736), then with the job's own
check, critical until a background checker gets an answer from the check's path.

Fault switches (attributes, flip them any time from the test thread):
``nomad_status`` / ``consul_status`` (answer every request with that HTTP status),
``nomad_delay`` / ``consul_delay`` (seconds before answering), ``placement_failure`` (a resource
dimension such as ``"memory"``: new evaluations fail to place), ``check_failing`` (checks stay
critical), ``checks_missing`` (services register without their own check), ``alloc_start_fails``
(allocations go ``failed`` with a driver error), and ``lose_allocation(job_id)`` (node lost: the
allocation becomes ``lost`` and is rescheduled to a new port).

ACL: pass ``nomad_token`` to require ``X-Nomad-Token`` (else 403). ``consul_token``: an unknown
token gets 403 "ACL not found"; no token (anonymous) or a token whose ``consul_policy`` lacks
``service:read``/``node:read`` gets Consul's filtering: 200 with the entries it may not read
dropped and ``X-Consul-Results-Filtered-By-ACLs: true``. ``task_start_delay`` plays a slow pull.

WAHA's session storage: every emulator the double starts shares ``session_store`` (a
``MemorySessionStore``, records keyed by ``WAHA_WORKER_ID`` = the job id), the way every
allocation of the real job points at the same ``WHATSAPP_SESSIONS_POSTGRESQL_URL`` database. So a
rescheduled or replaced allocation, a stop and start, and even a purge followed by a new
registration restart the sessions the job was running: purging a Nomad job does not drop WAHA's
databases. ``forget_sessions(job_id)`` wipes one job's storage (an operator dropping them). Pass
``emulator_options={"store": None}`` for emulators without storage.

Use ``with NomadConsulDouble() as double:`` (or ``serve_double()``); everything it started stops
on exit.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import msgspec

from app.waha.emulator.asgi import read_body
from app.waha.emulator.store import MemorySessionStore
from tests.doubles.nomad_schema import check_register_body, multierror, validate_variable_body
from tests.support.asgi_server import ServedApp, free_port

SERVER_FIELDS = (
    "Status",
    "StatusDescription",
    "Stop",
    "Version",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "SubmitTime",
    "Stable",
)
NODE_ID = "5f5e2a38-0d6c-4c2b-9b3e-000000000001"
NODE_NAME = "double-node-1"


@dataclass
class Alloc:
    id: str
    namespace: str
    job_id: str
    job_version: int
    group: str
    create_index: int
    modify_index: int
    eval_id: str
    client_status: str = "pending"
    desired_status: str = "run"
    description: str = ""
    port: int | None = None
    server: ServedApp | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    service_ids: list[str] = field(default_factory=list)
    create_time: int = field(default_factory=time.time_ns)


@dataclass
class JobRecord:
    job: dict[str, Any]
    namespace: str
    version: int
    create_index: int
    modify_index: int
    job_modify_index: int
    submit_time: int
    stop: bool = False
    placed: bool = True
    evals: list[dict[str, Any]] = field(default_factory=list)
    allocs: list[Alloc] = field(default_factory=list)
    seeded: str | None = None  # status of a seeded (bench) job that runs nothing


class _Route:
    def __init__(self, method: str, pattern: str, handler: Any, blocking: bool = False) -> None:
        self.blocking = blocking  # honours ?index=&wait= like Nomad's and Consul's blocking queries
        self.method = method
        self.parts = pattern.strip("/").split("/")
        self.pattern = pattern
        self.handler = handler

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method not in self.method.split("|"):
            return None
        parts = path.strip("/").split("/")
        if self.parts[-1].startswith("*"):  # the rest of the path, slashes included (a Variable path)
            head = len(self.parts) - 1
            if len(parts) <= head or parts[:head] != self.parts[:head]:
                return None
            return {self.parts[-1][1:]: unquote("/".join(parts[head:]))}
        if len(parts) != len(self.parts):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.parts, parts, strict=True):
            if want.startswith(":"):
                params[want[1:]] = unquote(got)
            elif want != got:
                return None
        return params


class _Request(msgspec.Struct):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    acl: set[str] | None = None  # Consul: the rules the caller's token grants (None: ACLs off)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        value = self.arg(name)
        return value is not None and value.lower() in ("", "1", "true", "t", "yes")


def _json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    hdrs = {"content-type": "application/json"}
    hdrs.update(headers or {})
    return status, msgspec.json.encode(payload), hdrs


def _duration(text: str) -> float:
    """Seconds of a Go duration such as ``30s``, ``100ms`` or ``5m`` (the ``wait`` parameter)."""
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * factor
            except ValueError:
                break
    return 300.0


def _text_response(status: int, text: str) -> tuple[int, bytes, dict[str, str]]:
    return status, text.encode(), {"content-type": "text/plain; charset=utf-8"}


class _AsgiApp:
    """Minimal ASGI router: the doubles need no framework, and a bare app keeps them fast."""

    def __init__(self, double: NomadConsulDouble, server: str, routes: list[_Route]) -> None:
        self.double = double
        self.server = server
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        request = _Request(
            method=scope["method"],
            path=scope["path"],
            query=parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True),
            headers={k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
            body=body,
        )
        status, payload, headers = await self._dispatch(request)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _dispatch(self, request: _Request) -> tuple[int, bytes, dict[str, str]]:
        d = self.double
        for route in self.routes:
            params = route.match(request.method, request.path)
            if params is None:
                continue
            d._count(self.server, request.method, route.pattern)
            delay = d.nomad_delay if self.server == "nomad" else d.consul_delay
            if delay:
                await asyncio.sleep(delay)
            status = d.nomad_status if self.server == "nomad" else d.consul_status
            if status:
                return _text_response(status, "rpc error: No cluster leader" if status >= 500 else "Permission denied")
            if route.pattern.startswith("/v1/status/"):
                # Nomad's and Consul's status endpoints need no ACL token at all: they prove the
                # server answers, not that WHAGO's token works.
                return route.handler(request, **params)
            if self.server == "nomad" and d.nomad_token and request.headers.get("x-nomad-token") != d.nomad_token:
                return _text_response(403, "Permission denied")
            if self.server == "consul" and d.consul_token:
                sent = request.headers.get("x-consul-token")
                if sent and sent != d.consul_token:
                    return _text_response(403, "ACL not found")  # an unknown token is refused
                # The anonymous token (no header) sees nothing: Consul filters, it does not refuse.
                request.acl = set(d.consul_policy) if sent else set()
            if request.method == "GET" and request.arg("index") and route.blocking:
                await d._block(request)
            try:
                return route.handler(request, **params)
            except Exception as exc:  # a bug in the double must show up as a loud 500
                return _text_response(500, f"double error: {type(exc).__name__}: {exc}")
        d._count(self.server, request.method, "<unrouted>")
        return _text_response(404, "Invalid URL")


class NomadConsulDouble:
    def __init__(
        self,
        *,
        nomad_token: str = "",
        consul_token: str = "",
        consul_policy: frozenset[str] = frozenset({"service:read", "node:read"}),
        check_interval: float = 0.05,
        registration_gap: float = 0.15,
        emulator_options: dict[str, Any] | None = None,
    ) -> None:
        self.nomad_token = nomad_token
        self.consul_token = consul_token
        self.consul_policy = consul_policy  # what consul_token grants (reads on all services/nodes)
        self.leader = "127.0.0.1:4647"  # "" while there is no leader (an election)
        self.node_pools = {"default", "all"}  # Nomad >= 1.6 refuses jobs in other pools
        # the client node's attributes, for constraints (anything else is "missing")
        self.node_attributes = {"${attr.kernel.name}": "linux", "${attr.driver.docker}": "1", "${node.class}": ""}
        self.check_interval = check_interval
        self.registration_gap = registration_gap
        self.emulator_options = dict(emulator_options or {})
        self.session_store = MemorySessionStore()  # kept across purges: see the module docstring
        # fault switches
        self.nomad_status: int | None = None
        self.consul_status: int | None = None
        self.nomad_delay = 0.0
        self.consul_delay = 0.0
        self.placement_failure: str | None = None
        self.check_failing = False
        self.checks_missing = False
        self.alloc_start_fails = False
        self.task_start_delay = 0.0  # seconds the "client" takes before the task runs (an image pull)
        # state
        self._lock = threading.RLock()
        self._index = 1000
        self.jobs: dict[tuple[str, str], JobRecord] = {}
        self.allocs: dict[str, Alloc] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}  # Consul service id -> registration
        self.submitted: list[dict[str, Any]] = []  # every accepted registration body
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, path) -> Variable
        self.variable_writes: list[dict[str, Any]] = []  # every accepted PUT body
        self.rejected: list[tuple[dict[str, Any] | None, list[str]]] = []
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.blocking_queries = 0
        self.plans = 0  # plan requests answered  # requests that carried ?index= on a blocking endpoint
        self._sorted_ids: dict[str, list[str]] | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._checker: threading.Thread | None = None
        self._nomad: ServedApp | None = None
        self._consul: ServedApp | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def nomad_url(self) -> str:
        assert self._nomad is not None, "double not started"
        return self._nomad.url

    @property
    def consul_url(self) -> str:
        assert self._consul is not None, "double not started"
        return self._consul.url

    def start(self) -> NomadConsulDouble:
        nomad_routes = [
            _Route("GET", "/v1/jobs", self._list_jobs, blocking=True),
            _Route("POST|PUT", "/v1/jobs", self._register),
            _Route("GET", "/v1/job/:job_id", self._read_job, blocking=True),
            _Route("POST|PUT", "/v1/job/:job_id", self._register),
            _Route("DELETE", "/v1/job/:job_id", self._deregister),
            _Route("POST|PUT", "/v1/job/:job_id/plan", self._plan),
            _Route("GET", "/v1/job/:job_id/allocations", self._job_allocations, blocking=True),
            _Route("GET", "/v1/job/:job_id/evaluations", self._job_evaluations, blocking=True),
            _Route("GET", "/v1/allocation/:alloc_id", self._read_allocation, blocking=True),
            _Route("POST|PUT", "/v1/allocation/:alloc_id/stop", self._stop_allocation),
            _Route("GET", "/v1/evaluation/:eval_id", self._read_evaluation),
            _Route("GET", "/v1/status/leader", self._leader),
            _Route("GET", "/v1/var/*path", self._read_variable),
            _Route("PUT|POST", "/v1/var/*path", self._write_variable),
            _Route("DELETE", "/v1/var/*path", self._delete_variable),
        ]
        consul_routes = [
            _Route("GET", "/v1/health/service/:name", self._health_service, blocking=True),
            _Route("GET", "/v1/catalog/nodes", self._catalog_nodes, blocking=True),
            _Route("GET", "/v1/status/leader", self._leader),
        ]
        self._nomad = ServedApp(_AsgiApp(self, "nomad", nomad_routes)).start()
        self._consul = ServedApp(_AsgiApp(self, "consul", consul_routes)).start()
        self._checker = threading.Thread(target=self._check_loop, name="double-consul-checker", daemon=True)
        self._checker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(10)
        if self._checker:
            self._checker.join(5)
        with self._lock:
            servers = [a.server for a in self.allocs.values() if a.server is not None]
            for alloc in self.allocs.values():
                alloc.server = None
        # uvicorn notices should_exit within ~0.1 s: stop everything at once, then wait.
        everything = servers + [s for s in (self._nomad, self._consul) if s is not None]
        for served in everything:
            served.server.should_exit = True
        for served in everything:
            served.thread.join(10)

    def __enter__(self) -> NomadConsulDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    def _count(self, server: str, method: str, route: str) -> None:
        with self._lock:
            self.request_counts[f"{server} {method} {route}"] += 1

    def count(self, server: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(
                n
                for key, n in self.request_counts.items()
                if (server is None or key.startswith(server + " ")) and contains in key
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.request_counts.clear()

    def forget_sessions(self, job_id: str) -> None:
        """Wipe the job's WAHA storage (its sessions and links), as dropping its databases would."""
        self.session_store.clear(job_id)

    def emulator_of(self, job_id: str, namespace: str = "default") -> Any:
        """The live ``Emulator`` behind the job's current allocation, or None."""
        alloc = self.current_alloc(job_id, namespace)
        served = alloc.server if alloc is not None else None
        return served.app.state.emulator if served is not None else None

    def running_emulators(self) -> int:
        with self._lock:
            return sum(1 for a in self.allocs.values() if a.server is not None)

    def job(self, job_id: str, namespace: str = "default") -> JobRecord | None:
        with self._lock:
            return self.jobs.get((namespace, job_id))

    def current_alloc(self, job_id: str, namespace: str = "default") -> Alloc | None:
        with self._lock:
            record = self.jobs.get((namespace, job_id))
            if record is None:
                return None
            live = [a for a in record.allocs if a.desired_status == "run"]
            return live[-1] if live else None

    def seed_jobs(
        self, count: int, *, prefix: str = "whago-waha-", namespace: str = "default", status: str = "running"
    ) -> list[str]:
        """Insert job records directly (no emulators), for listing benchmarks."""
        ids = []
        with self._lock:
            for _ in range(count):
                job_id = f"{prefix}{uuid.uuid4()}"
                index = self._next_index()
                job = {
                    "ID": job_id,
                    "Name": job_id,
                    "Type": "service",
                    "Namespace": namespace,
                    "Datacenters": ["dc1"],
                    "Meta": {"whago_user_id": job_id[len(prefix) :], "created_by": "whago"},
                }
                self.jobs[(namespace, job_id)] = JobRecord(
                    job=job,
                    namespace=namespace,
                    version=0,
                    create_index=index,
                    modify_index=index,
                    job_modify_index=index,
                    submit_time=time.time_ns(),
                    seeded=status,
                )
                ids.append(job_id)
            self._sorted_ids = None
        return ids

    def lose_allocation(self, job_id: str, namespace: str = "default") -> str:
        """The node running the job's allocation is lost: the allocation turns ``lost`` (its
        emulator dies and leaves Consul) and Nomad reschedules it onto a new port. Returns the new
        allocation id."""
        with self._lock:
            record = self.jobs[(namespace, job_id)]
            alloc = self.current_alloc(job_id, namespace)
            assert alloc is not None, f"{job_id} has no live allocation"
            self._terminate(alloc, client_status="lost", description="alloc is lost since its node is down")
            ev = self._new_eval(record, "node-update")
            new = self._place(record, ev)
            return new.id if new else ""

    async def _block(self, request: _Request) -> None:
        """A blocking query: answer once the state index passes ``index`` or ``wait`` elapses
        (default 5 min, at most 10, like both servers). One index for all of the state: a return
        does not promise that the queried thing changed, which Nomad and Consul do not promise
        either."""
        try:
            index = int(request.arg("index") or 0)
        except ValueError:
            return
        with self._lock:
            self.blocking_queries += 1
        deadline = time.monotonic() + min(_duration(request.arg("wait") or "5m"), 600.0)
        # polls its own state (changed from many threads) rather than wiring an Event to each
        while self._index <= index and time.monotonic() < deadline and not self._stopping.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ state internals (under lock)
    def _next_index(self) -> int:
        self._index += 1
        return self._index

    def _job_status(self, record: JobRecord) -> str:
        if record.seeded:
            return record.seeded
        if record.stop:
            return "dead"
        if any(self._live(a) for a in record.allocs):
            return "running"
        if not record.placed or not record.allocs:
            return "pending"
        return "dead"

    @staticmethod
    def _live(alloc: Alloc) -> bool:
        return alloc.desired_status == "run" and alloc.client_status in ("pending", "running")

    def _job_view(self, record: JobRecord) -> dict[str, Any]:
        job = dict(record.job)
        job.update(
            Status=self._job_status(record),
            StatusDescription="",
            Stop=record.stop,
            Version=record.version,
            CreateIndex=record.create_index,
            ModifyIndex=record.modify_index,
            JobModifyIndex=record.job_modify_index,
            SubmitTime=record.submit_time,
            Stable=False,
        )
        return job

    def _new_eval(self, record: JobRecord, trigger: str) -> dict[str, Any]:
        index = self._next_index()
        ev: dict[str, Any] = {
            "ID": str(uuid.uuid4()),
            "Namespace": record.namespace,
            "Priority": record.job.get("Priority", 50),
            "Type": record.job.get("Type", "service"),
            "TriggeredBy": trigger,
            "JobID": record.job["ID"],
            "JobModifyIndex": record.job_modify_index,
            "Status": "complete",
            "StatusDescription": "",
            "FailedTGAllocs": None,
            "BlockedEval": "",
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": time.time_ns(),
            "ModifyTime": time.time_ns(),
        }
        record.evals.append(ev)
        self.evals[ev["ID"]] = ev
        return ev

    def _place(self, record: JobRecord, ev: dict[str, Any]) -> Alloc | None:
        group = (record.job.get("TaskGroups") or [{}])[0]
        gname = group.get("Name", "group")
        filtered = self._constraint_filtered(record.job)
        if self.placement_failure or filtered:
            dim = self.placement_failure
            ev["FailedTGAllocs"] = {
                gname: {
                    "NodesEvaluated": 1,
                    "NodesFiltered": 1 if filtered else 0,
                    "NodesAvailable": {d: 1 for d in record.job.get("Datacenters") or ["dc1"]},
                    "NodesExhausted": 0 if filtered else 1,
                    "DimensionExhausted": None if filtered else {dim: 1},
                    "ClassExhausted": None,
                    "ConstraintFiltered": filtered or None,
                    "QuotaExhausted": None,
                    "CoalescedFailures": 0,
                }
            }
            blocked = self._new_eval(record, "queued-allocs")
            blocked["Status"] = "blocked"
            blocked["PreviousEval"] = ev["ID"]
            # Nomad >= 1.x copies the failures onto the blocked eval too (CreateBlockedEval)
            blocked["FailedTGAllocs"] = json.loads(json.dumps(ev["FailedTGAllocs"]))
            ev["BlockedEval"] = blocked["ID"]
            record.placed = False
            return None
        record.placed = True
        index = self._next_index()
        alloc = Alloc(
            id=str(uuid.uuid4()),
            namespace=record.namespace,
            job_id=record.job["ID"],
            job_version=record.version,
            group=gname,
            create_index=index,
            modify_index=index,
            eval_id=ev["ID"],
        )
        alloc.events.append({"Type": "Received", "DisplayMessage": "Task received by client", "Time": time.time_ns()})
        alloc.port = free_port()  # the dynamic port is chosen at placement, before the task runs
        record.allocs.append(alloc)
        self.allocs[alloc.id] = alloc
        # Group services are registered by the alloc runner before any task starts (the group
        # service hook's prerun), their checks critical: readiness must wait for the check.
        self._register_services(alloc, group.get("Services") or [], f"group-{gname}")
        snapshot = json.loads(json.dumps(record.job))
        thread = threading.Thread(
            target=self._run_alloc, args=(alloc, snapshot), name=f"double-alloc-{alloc.id[:8]}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return alloc

    def _constraint_filtered(self, job: dict[str, Any]) -> dict[str, int]:
        """Job constraints the one node fails (``=``/``!=`` only), as ``ConstraintFiltered``.
        A constraint on an attribute the node lacks filters it, as Nomad does: the job is
        accepted and its evaluation blocked (observed on a real agent, nomad-consul.md §1.9)."""
        failed: dict[str, int] = {}
        for c in job.get("Constraints") or []:
            left, op, right = c.get("LTarget", ""), c.get("Operand", "="), c.get("RTarget", "")
            have = self.node_attributes.get(left)
            ok = have is not None and ((have == right) if op in ("=", "==", "is") else (have != right))
            if op not in ("=", "==", "is", "!=", "not"):
                ok = have is not None
            if not ok:
                failed[f"{left} {op} {right}"] = 1
        return failed

    def _run_alloc(self, alloc: Alloc, job: dict[str, Any]) -> None:
        """The "client": start the task (an emulator) and register its services in Consul."""
        from app.waha.emulator import EmulatorConfig, create_emulator_app

        group = job["TaskGroups"][0]
        task = group["Tasks"][0]
        env = dict(task.get("Env") or {})
        if self.task_start_delay and self._stopping.wait(self.task_start_delay):
            return
        rendered = self._render_templates(alloc, task)
        if rendered is None:
            return  # a template waits for a Variable that does not exist: the task never starts
        env.update(rendered)
        if self.alloc_start_fails:
            with self._lock:
                self._deregister_services(alloc)
                alloc.client_status = "failed"
                alloc.events.append(
                    {
                        "Type": "Driver Failure",
                        "DisplayMessage": "Failed to pull `devlikeapro/waha`: manifest unknown",
                        "DriverError": "manifest unknown",
                        "Time": time.time_ns(),
                    }
                )
            return
        options = {
            "api_key": env.get("WAHA_API_KEY", ""),
            "worker_id": env.get("WAHA_WORKER_ID", alloc.job_id),
            "engine": env.get("WHATSAPP_DEFAULT_ENGINE", "GOWS"),
            "boot_delay_seconds": 0.05,
            "store": self.session_store,
        }
        options.update(self.emulator_options)
        try:
            served = ServedApp(create_emulator_app(EmulatorConfig(**options)), port=alloc.port).start()
        except Exception as exc:  # pragma: no cover - reported through the alloc like a driver error
            with self._lock:
                alloc.client_status = "failed"
                alloc.events.append({"Type": "Driver Failure", "DisplayMessage": str(exc), "Time": time.time_ns()})
            return
        with self._lock:
            if alloc.desired_status != "run" or self._stopping.is_set():
                late = True
            else:
                late = False
                alloc.server = served
                alloc.client_status = "running"
                alloc.modify_index = self._next_index()
                alloc.events.append(
                    {"Type": "Started", "DisplayMessage": "Task started by client", "Time": time.time_ns()}
                )
                # Task services: registered once the task runs (the task service hook's poststart).
                self._register_services(alloc, task.get("Services") or [], task.get("Name") or "task")
        if late:
            served.stop()

    _NOMAD_VAR = re.compile(r'\{\{\s*with\s+nomadVar\s+"([^"]+)"\s*\}\}(.*?)\{\{\s*end\s*\}\}', re.S)
    _ITEM_LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)=\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*printf\s+"%q"\s*\}\}$')

    def _render_templates(self, alloc: Alloc, task: dict[str, Any]) -> dict[str, str] | None:
        """The env of ``Envvars`` templates, rendered like Nomad's template hook from the
        Variables (only the ``with nomadVar`` / ``NAME={{ .item | printf "%q" }}`` lines WHAGO
        writes). A missing Variable blocks the task until it is written, as on a real client;
        an item the template names but the Variable lacks fails the test loudly."""
        env: dict[str, str] = {}
        for template in task.get("Templates") or []:
            text = template.get("EmbeddedTmpl") or ""
            for path, inner in self._NOMAD_VAR.findall(text):
                variable = self._await_variable(alloc, path)
                if variable is None:
                    return None
                for line in filter(None, (raw.strip() for raw in inner.splitlines())):
                    match = self._ITEM_LINE.fullmatch(line)
                    assert match, f"template line the double cannot render: {line!r}"
                    name, item = match.groups()
                    assert item in variable["Items"], f"template refers to missing item {item!r} of {path}"
                    if template.get("Envvars"):
                        env[name] = variable["Items"][item]
        return env

    def _await_variable(self, alloc: Alloc, path: str) -> dict[str, Any] | None:
        """The Variable, once it exists: like the template hook, the task waits for it (and
        starts when it is written); None when the allocation is stopped first."""
        reported = False
        while True:
            with self._lock:
                variable = self.variables.get((alloc.namespace, path))
                if variable is not None:
                    return variable
                if alloc.desired_status != "run":
                    return None
                if not reported:
                    reported = True
                    alloc.events.append(
                        {
                            "Type": "Template",
                            "DisplayMessage": f"Missing: nomad.var.block({path}@{alloc.namespace}.global)",
                            "Time": time.time_ns(),
                        }
                    )
            if self._stopping.wait(0.02):
                return None

    def variable(self, path: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._lock:
            return self.variables.get((namespace, path))

    def _read_variable(self, request: _Request, path: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            variable = self.variables.get((request.arg("namespace") or "default", path))
        if variable is None:
            return _text_response(404, "variable not found")
        return _json_response(200, variable, {"X-Nomad-Index": str(variable["ModifyIndex"])})

    def _write_variable(self, request: _Request, path: str) -> tuple[int, bytes, dict[str, str]]:
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            return _text_response(400, f"Failed to decode request body: {exc}")
        problems = validate_variable_body(body)
        if problems:
            return _text_response(400, "; ".join(problems))
        namespace = request.arg("namespace") or "default"
        if body.get("Path") not in (None, path) or body.get("Namespace") not in (None, namespace):
            return _text_response(400, "variable path or namespace does not match the URL")
        items = body.get("Items") or {}
        if not items:
            return _text_response(400, "variable missing required Items object")
        with self._lock:
            now, index = time.time_ns(), self._next_index()
            old = self.variables.get((namespace, path))
            cas = request.arg("cas")
            if cas is not None and int(cas) != (old["ModifyIndex"] if old else 0):
                return _json_response(409, old or {})
            variable = {
                "Namespace": namespace,
                "Path": path,
                "Items": dict(items),
                "CreateIndex": old["CreateIndex"] if old else index,
                "CreateTime": old["CreateTime"] if old else now,
                "ModifyIndex": index,
                "ModifyTime": now,
            }
            self.variables[(namespace, path)] = variable
            self.variable_writes.append(body)
        return _json_response(200, variable, {"X-Nomad-Index": str(index)})

    def _delete_variable(self, request: _Request, path: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.variables.pop((request.arg("namespace") or "default", path), None)
            index = self._next_index()
        return _json_response(200, None, {"X-Nomad-Index": str(index)})

    def _deregister_services(self, alloc: Alloc) -> None:
        for service_id in alloc.service_ids:
            self.services.pop(service_id, None)
        alloc.service_ids = []
        self._next_index()

    def _register_services(self, alloc: Alloc, services: list[dict[str, Any]], owner: str) -> None:
        """Register in Consul as Nomad does; ``owner`` is ``group-<name>`` or the task name."""
        now = time.monotonic()
        self._next_index()
        for svc in services:
            name = svc["Name"]
            label = svc.get("PortLabel", "")
            service_id = f"_nomad-task-{alloc.id}-{owner}-{name}-{label}"
            checks = []
            for chk in svc.get("Checks") or []:
                digest = hashlib.sha1(f"{service_id}{chk.get('Name')}".encode()).hexdigest()
                checks.append(
                    {
                        "CheckID": f"_nomad-check-{digest}",
                        "Name": chk.get("Name") or f"service: {name!r} check",
                        "Status": chk.get("InitialStatus") or "critical",
                        "Output": "",
                        "ServiceID": service_id,
                        "ServiceName": name,
                        "Path": chk.get("Path") or "/",
                        "Header": chk.get("Header") or {},
                        "Type": chk.get("Type"),
                    }
                )
            meta = dict(svc.get("Meta") or {})
            meta["external-source"] = "nomad"
            self.services[service_id] = {
                "alloc_id": alloc.id,
                "checks_visible_at": now + self.registration_gap,
                "Service": {
                    "ID": service_id,
                    "Service": name,
                    "Tags": list(svc.get("Tags") or []),
                    "Address": "127.0.0.1",
                    "Meta": meta,
                    "Port": alloc.port,
                    "Weights": {"Passing": 1, "Warning": 1},
                    "Namespace": "default",
                },
                "Checks": checks,
            }
            alloc.service_ids.append(service_id)

    def _terminate(self, alloc: Alloc, *, client_status: str, description: str = "", desired: str = "stop") -> None:
        alloc.desired_status = desired
        alloc.client_status = client_status
        alloc.description = description
        alloc.modify_index = self._next_index()
        self._deregister_services(alloc)
        server, alloc.server = alloc.server, None
        if server is not None:
            # uvicorn shutdown blocks briefly; do it off the request path.
            thread = threading.Thread(target=server.stop, daemon=True, name=f"double-stop-{alloc.id[:8]}")
            self._threads.append(thread)
            thread.start()

    def _check_loop(self) -> None:
        with httpx.Client(timeout=0.5) as client:
            while not self._stopping.wait(self.check_interval):
                with self._lock:
                    now = time.monotonic()
                    for reg in self.services.values():
                        if not reg.get("checks_visible") and now >= reg["checks_visible_at"]:
                            reg["checks_visible"] = True  # the second registration step: a change
                            self._next_index()
                    work = [
                        (sid, reg["Service"]["Port"], chk)
                        for sid, reg in self.services.items()
                        for chk in reg["Checks"]
                    ]
                for _sid, port, chk in work:
                    status = "critical"
                    if not self.check_failing and chk.get("Type") == "http":
                        headers = {k: v[0] for k, v in (chk.get("Header") or {}).items() if v}
                        try:
                            resp = client.get(f"http://127.0.0.1:{port}{chk['Path']}", headers=headers)
                            status = "passing" if resp.status_code < 400 else "critical"
                        except httpx.HTTPError:
                            status = "critical"
                    with self._lock:
                        if chk["Status"] != status:
                            chk["Status"] = status
                            self._next_index()  # wakes blocking health queries, as Consul does

    # ------------------------------------------------------------------ Nomad handlers
    def _namespace(self, request: _Request, job: dict[str, Any] | None = None) -> str:
        return request.arg("namespace") or (job or {}).get("Namespace") or "default"

    def _register(self, request: _Request, job_id: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            return _text_response(400, f"Failed to decode request body: {exc}")
        rejection = self._admit(body, job_id)
        if rejection is not None:
            with self._lock:
                self.rejected.append((body if isinstance(body, dict) else None, rejection[1]))
            return _text_response(rejection[0], rejection[2])
        job = body["Job"]
        namespace = self._namespace(request, job)
        with self._lock:
            key = (namespace, job["ID"])
            record = self.jobs.get(key)
            if body.get("EnforceIndex"):
                # nomad/job_endpoint.go: the check-and-set of `nomad job run -check-index`; the
                # error carries no HTTP code, so the agent answers 500.
                wanted = int(body.get("JobModifyIndex") or 0)
                have = record.job_modify_index if record is not None else 0
                if wanted != have:
                    if record is None:
                        text = f"Enforcing job modify index {wanted}: job does not exist"
                    elif wanted == 0:
                        text = "Enforcing job modify index 0: job already exists"
                    else:
                        text = (
                            f"Enforcing job modify index {wanted}: job exists with conflicting job modify index: {have}"
                        )
                    self.rejected.append((body, [text]))
                    return _text_response(500, text)
            self.submitted.append(body)
            spec = {k: v for k, v in job.items() if k not in SERVER_FIELDS}
            now_index = self._next_index()
            if record is None:
                record = JobRecord(
                    job=spec,
                    namespace=namespace,
                    version=0,
                    create_index=now_index,
                    modify_index=now_index,
                    job_modify_index=now_index,
                    submit_time=time.time_ns(),
                )
                self.jobs[key] = record
                self._sorted_ids = None
                changed = True
            else:
                changed = spec != record.job or record.stop or bool(job.get("Stop"))
                if spec != record.job:
                    record.version += 1
                record.job = spec
                record.modify_index = now_index
                if changed:
                    record.job_modify_index = now_index
                    record.submit_time = time.time_ns()
            record.stop = bool(job.get("Stop"))
            ev = self._new_eval(record, "job-register")
            if changed:
                for alloc in record.allocs:
                    if self._live(alloc):
                        self._terminate(
                            alloc, client_status="complete", description="alloc not needed due to job update"
                        )
            # The scheduler reconciles: a running job with no live allocation gets one placed.
            if not record.stop and not any(self._live(a) for a in record.allocs):
                self._place(record, ev)
            return _json_response(
                200,
                {
                    "EvalID": ev["ID"],
                    "EvalCreateIndex": ev["CreateIndex"],
                    "JobModifyIndex": record.job_modify_index,
                    "Warnings": "",
                    "Index": now_index,
                    "LastContact": 0,
                    "KnownLeader": True,
                },
            )

    def _admit(self, body: Any, path_job_id: str | None) -> tuple[int, list[str], str] | None:
        """(status, problems, text) of a refused job body, or None."""
        rejection = check_register_body(body, path_job_id)
        if rejection is not None:
            return rejection.status, rejection.problems, rejection.text
        job = body["Job"]
        pool = job.get("NodePool") or "default"
        if pool not in self.node_pools:  # nomad/job_endpoint_hooks.go, an admission validator
            problem = f"job {job['ID']!r} is in nonexistent node pool {pool!r}".replace("'", '"')
            return 500, [problem], multierror([problem])
        return None

    def _plan(self, request: _Request, job_id: str) -> tuple[int, bytes, dict[str, str]]:
        """``POST /v1/job/:id/plan``: validation as for register, then the diff against the
        stored job (``Diff.Type`` ``None`` / ``Added`` / ``Edited``; the fields changed are listed
        flat, Nomad nests them by object)."""
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            return _text_response(400, f"Failed to decode request body: {exc}")
        rejection = self._admit({"Job": body.get("Job")} if isinstance(body, dict) else body, job_id)
        if rejection is not None:
            return _text_response(rejection[0], rejection[2])
        job = body["Job"]
        with self._lock:
            self.plans += 1
            record = self.jobs.get((self._namespace(request, job), job_id))
            spec = {k: v for k, v in job.items() if k not in SERVER_FIELDS}
            if record is None:
                diff_type, fields = "Added", []
            else:
                fields = sorted(k for k in set(spec) | set(record.job) if spec.get(k) != record.job.get(k))
                if record.stop != bool(job.get("Stop")):
                    fields.append("Stop")
                diff_type = "Edited" if fields else "None"
            payload = {
                "Annotations": {"DesiredTGUpdates": {}},
                "Diff": {
                    "Type": diff_type,
                    "ID": job_id,
                    "Fields": [{"Name": f, "Type": "Edited"} for f in fields] if body.get("Diff") else None,
                    "Objects": None,
                    "TaskGroups": None,
                },
                "FailedTGAllocs": None,
                "JobModifyIndex": record.job_modify_index if record is not None else 0,
                "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
                "Warnings": "",
                "Index": self._index,
            }
        return _json_response(200, payload)

    def _list_jobs(self, request: _Request) -> tuple[int, bytes, dict[str, str]]:
        namespace = request.arg("namespace") or "default"
        prefix = request.arg("prefix") or ""
        if request.arg("filter") and prefix:
            return _text_response(400, "filter and prefix cannot be combined")
        try:
            per_page = int(request.arg("per_page") or 0)
        except ValueError:
            return _text_response(400, "failed to parse value of per_page")
        # Nomad's job-list tokens are "<namespace>.<job id>" (paginator's StructsTokenizer)
        token = (request.arg("next_token") or "").partition(".")[2]
        with_meta = request.flag("meta")

        with self._lock:
            if self._sorted_ids is None:
                ids: dict[str, list[str]] = collections.defaultdict(list)
                for ns, jid in self.jobs:
                    ids[ns].append(jid)
                self._sorted_ids = {ns: sorted(v) for ns, v in ids.items()}
            ordered = self._sorted_ids.get(namespace, [])
            start = bisect.bisect_left(ordered, max(prefix, token))
            page: list[dict[str, Any]] = []
            next_token = ""
            for jid in ordered[start:]:
                if not jid.startswith(prefix):
                    break
                if per_page and len(page) == per_page:
                    next_token = f"{namespace}.{jid}"
                    break
                record = self.jobs[(namespace, jid)]
                status = self._job_status(record)
                stub = {
                    "ID": jid,
                    "ParentID": "",
                    "Name": record.job.get("Name", jid),
                    "Namespace": namespace,
                    "Datacenters": record.job.get("Datacenters", []),
                    "Type": record.job.get("Type", "service"),
                    "Priority": record.job.get("Priority", 50),
                    "Periodic": False,
                    "ParameterizedJob": False,
                    "Stop": record.stop,
                    "Status": status,
                    "StatusDescription": "",
                    "JobSummary": {"JobID": jid, "Namespace": namespace, "Summary": {}},
                    "CreateIndex": record.create_index,
                    "ModifyIndex": record.modify_index,
                    "JobModifyIndex": record.job_modify_index,
                    "SubmitTime": record.submit_time,
                }
                if with_meta:
                    stub["Meta"] = record.job.get("Meta") or {}
                page.append(stub)
            index = self._index
        headers = {"X-Nomad-Index": str(index), "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "0"}
        if next_token:
            headers["X-Nomad-NextToken"] = next_token
        return _json_response(200, page, headers)

    def _get_record(self, request: _Request, job_id: str) -> JobRecord | None:
        return self.jobs.get((self._namespace(request), job_id))

    def _read_job(self, request: _Request, job_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            record = self._get_record(request, job_id)
            if record is None:
                return _text_response(404, "job not found")
            return _json_response(200, self._job_view(record), {"X-Nomad-Index": str(record.modify_index)})

    def _alloc_stub(self, alloc: Alloc) -> dict[str, Any]:
        return {
            "ID": alloc.id,
            "EvalID": alloc.eval_id,
            "Name": f"{alloc.job_id}.{alloc.group}[0]",
            "Namespace": alloc.namespace,
            "NodeID": NODE_ID,
            "NodeName": NODE_NAME,
            "JobID": alloc.job_id,
            "JobType": "service",
            "JobVersion": alloc.job_version,
            "TaskGroup": alloc.group,
            "DesiredStatus": alloc.desired_status,
            "DesiredDescription": "",
            "ClientStatus": alloc.client_status,
            "ClientDescription": alloc.description,
            "TaskStates": {
                "waha": {
                    "State": {"running": "running", "pending": "pending"}.get(alloc.client_status, "dead"),
                    "Failed": alloc.client_status == "failed",
                    "Restarts": 0,
                    "Events": list(alloc.events),
                }
            },
            "DeploymentStatus": None,
            "FollowupEvalID": "",
            "CreateIndex": alloc.create_index,
            "ModifyIndex": alloc.modify_index,
            "CreateTime": alloc.create_time,
            "ModifyTime": time.time_ns(),
        }

    def _job_allocations(self, request: _Request, job_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            record = self._get_record(request, job_id)
            if record is None:
                return _json_response(200, [])  # Nomad answers an empty list for unknown jobs
            # The list holds stubs only: no AllocatedResources (Nomad builds it with alloc.Stub(nil)).
            return _json_response(
                200, [self._alloc_stub(a) for a in record.allocs], {"X-Nomad-Index": str(self._index)}
            )

    def _job_evaluations(self, request: _Request, job_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            record = self._get_record(request, job_id)
            return _json_response(200, [] if record is None else list(record.evals))

    def _read_evaluation(self, request: _Request, eval_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            ev = self.evals.get(eval_id)
            return _json_response(200, ev) if ev else _text_response(404, "eval not found")

    def _read_allocation(self, request: _Request, alloc_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            alloc = self.allocs.get(alloc_id)
            if alloc is None:
                return _text_response(404, "alloc not found")
            detail = self._alloc_stub(alloc)
            ports = [{"Label": "http", "Value": alloc.port, "To": 3000, "HostIP": "127.0.0.1"}] if alloc.port else []
            detail["AllocatedResources"] = {
                "Shared": {
                    "Ports": ports,
                    "Networks": [
                        {
                            "Mode": "host",
                            "IP": "127.0.0.1",
                            "DynamicPorts": [{"Label": p["Label"], "Value": p["Value"], "To": p["To"]} for p in ports],
                        }
                    ],
                    "DiskMB": 300,
                },
                "Tasks": {},
            }
            return _json_response(200, detail)

    def _stop_allocation(self, request: _Request, alloc_id: str) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            alloc = self.allocs.get(alloc_id)
            if alloc is None:
                return _text_response(404, "alloc not found")
            record = self.jobs.get((alloc.namespace, alloc.job_id))
            self._terminate(alloc, client_status="complete", description="alloc was stopped by the user")
            if record is None:
                return _json_response(200, {"EvalID": "", "Index": self._index})
            ev = self._new_eval(record, "alloc-stop")
            if not record.stop:
                self._place(record, ev)
            return _json_response(200, {"EvalID": ev["ID"], "Index": ev["CreateIndex"]})

    def _deregister(self, request: _Request, job_id: str) -> tuple[int, bytes, dict[str, str]]:
        purge = request.flag("purge")
        with self._lock:
            key = (self._namespace(request), job_id)
            record = self.jobs.get(key)
            if record is None:
                # Nomad deregisters an unknown job without complaint (and still makes an eval).
                index = self._next_index()
                return _json_response(
                    200, {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index, "JobModifyIndex": index}
                )
            for alloc in record.allocs:
                if alloc.desired_status == "run":
                    self._terminate(
                        alloc, client_status="complete", description="alloc not needed since job was stopped"
                    )
            index = self._next_index()
            record.stop = True
            record.job_modify_index = index
            ev = self._new_eval(record, "job-deregister")
            if purge:
                del self.jobs[key]
                for alloc in record.allocs:
                    self.allocs.pop(alloc.id, None)
                for e in record.evals:
                    self.evals.pop(e["ID"], None)
                self._sorted_ids = None
            return _json_response(
                200, {"EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"], "JobModifyIndex": index}
            )

    # ------------------------------------------------------------------ Consul handler
    def _leader(self, request: _Request) -> tuple[int, bytes, dict[str, str]]:
        # both APIs answer the leader's RPC address as a JSON string ("" without a leader)
        return _json_response(200, self.leader)

    def _catalog_nodes(self, request: _Request) -> tuple[int, bytes, dict[str, str]]:
        node = {"ID": NODE_ID, "Node": NODE_NAME, "Address": "127.0.0.1", "Datacenter": "dc1", "Meta": {}}
        headers = {"X-Consul-Index": str(self._index), "X-Consul-KnownLeader": "true"}
        if request.acl is not None and "node:read" not in request.acl:
            headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
            return _json_response(200, [], headers)
        return _json_response(200, [node], headers)

    def _health_service(self, request: _Request, name: str) -> tuple[int, bytes, dict[str, str]]:
        passing_only = request.flag("passing")
        now = time.monotonic()
        out = []
        with self._lock:
            for reg in self.services.values():
                if reg["Service"]["Service"] != name:
                    continue
                checks = [
                    {
                        "Node": NODE_NAME,
                        "CheckID": "serfHealth",
                        "Name": "Serf Health Status",
                        "Status": "passing",
                        "Notes": "",
                        "Output": "Agent alive and reachable",
                        "ServiceID": "",
                        "ServiceName": "",
                        "ServiceTags": [],
                        "Namespace": "default",
                    }
                ]
                if not self.checks_missing and now >= reg["checks_visible_at"]:
                    for chk in reg["Checks"]:
                        checks.append(
                            {
                                "Node": NODE_NAME,
                                "CheckID": chk["CheckID"],
                                "Name": chk["Name"],
                                "Status": chk["Status"],
                                "Notes": "",
                                "Output": chk["Output"],
                                "ServiceID": chk["ServiceID"],
                                "ServiceName": chk["ServiceName"],
                                "ServiceTags": reg["Service"]["Tags"],
                                "Namespace": "default",
                            }
                        )
                if passing_only and any(c["Status"] != "passing" for c in checks):
                    continue
                out.append(
                    {
                        "Node": {
                            "ID": NODE_ID,
                            "Node": NODE_NAME,
                            "Address": "127.0.0.1",
                            "Datacenter": "dc1",
                            "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
                            "Meta": {},
                        },
                        "Service": dict(reg["Service"]),
                        "Checks": checks,
                    }
                )
            index = self._index
        headers = {"X-Consul-Index": str(index), "X-Consul-KnownLeader": "true"}
        # Consul needs service:read on the service *and* node:read on its node; it drops what the
        # token cannot read and says so in a header, with a 200 (agent/consul/acl.go filterACL).
        if out and request.acl is not None and not {"service:read", "node:read"} <= request.acl:
            out = []
            headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
        return _json_response(200, out, headers)


@contextlib.contextmanager
def serve_double(**kwargs: Any) -> Iterator[NomadConsulDouble]:
    double = NomadConsulDouble(**kwargs).start()
    try:
        yield double
    finally:
        double.stop()

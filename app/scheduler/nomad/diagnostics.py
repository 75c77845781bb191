"""Pure readings of Nomad and Consul answers: readiness, addresses and "why is it not running".

No I/O here: every function takes decoded JSON (Nomad's / Consul's casing) and returns plain
values, so each rule is unit-testable without a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from app.scheduler.nomad_job import CHECK_NAME, PORT_LABEL

Json = dict[str, Any]
Endpoint = tuple[str, int]  # (address, port)

NO_ALLOCATION = "no allocation yet"


def safe_origin(url: str) -> str:
    """scheme://host:port of a URL, without any userinfo, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme or 'http'}://{host}" + (f":{parts.port}" if parts.port else "")


def http_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"http://{host}:{port}"


# ---------------------------------------------------------------------------- allocations
def describe_alloc(alloc: Json) -> str:
    status = alloc.get("ClientStatus") or "unknown"
    detail = alloc.get("ClientDescription") or ""
    # The newest task event usually says why (image pull failure, OOM, ...).
    for state in (alloc.get("TaskStates") or {}).values():
        events = (state or {}).get("Events") or []
        if events:
            last = events[-1]
            detail = last.get("DisplayMessage") or last.get("DriverError") or last.get("Type") or detail
    return f"{status} ({detail})" if detail else status


class AllocationView(msgspec.Struct, frozen=True):
    """A job's allocations as readiness sees them."""

    last_status: str  # human description of the newest allocation, for "not ready" errors
    running: list[Json]  # desired to run and running, newest first
    live: list[Json]  # desired to run and pending or running: "still trying"


def allocation_view(allocs: list[Json]) -> AllocationView:
    wanted = sorted(
        (a for a in allocs if a.get("DesiredStatus") == "run"),
        key=lambda a: a.get("CreateIndex") or 0,
        reverse=True,
    )
    if wanted:
        last = describe_alloc(wanted[0])
    else:
        last = describe_alloc(allocs[-1]) if allocs else NO_ALLOCATION
    return AllocationView(
        last_status=last,
        running=[a for a in wanted if a.get("ClientStatus") == "running"],
        live=[a for a in wanted if a.get("ClientStatus") in ("pending", "running")],
    )


def alloc_endpoint(alloc: Json) -> tuple[str, int] | None:
    """(host IP or "", port) of the allocation's ``http`` port, from the allocation *detail*
    (list stubs carry no ports)."""
    shared = (alloc.get("AllocatedResources") or {}).get("Shared") or {}
    for port in shared.get("Ports") or []:
        if port.get("Label") == PORT_LABEL and port.get("Value"):
            return port.get("HostIP") or "", int(port["Value"])
    for net in shared.get("Networks") or []:
        for port in net.get("DynamicPorts") or []:
            if port.get("Label") == PORT_LABEL and port.get("Value"):
                return net.get("IP") or "", int(port["Value"])
    return None


def matching_url(alloc_port: tuple[str, int], healthy: Iterable[Endpoint]) -> str | None:
    """The base URL of the healthy Consul instance that is this allocation's port, if any.

    Matching by port (and host IP when Nomad bound a specific one) keeps a lingering instance of
    a replaced allocation from being chosen after a reschedule.
    """
    host_ip, port = alloc_port
    for address, consul_port in healthy:
        # S104: this compares Nomad's answer with the wildcard addresses; it binds nothing
        if consul_port == port and (not host_ip or host_ip in ("0.0.0.0", "::") or host_ip == address):  # noqa: S104
            return http_url(address, port)
    return None


# ---------------------------------------------------------------------------- Consul
def passing_endpoints(entries: Iterable[Json], user_id: str) -> list[Endpoint]:
    """(address, port) of the tenant's Consul instances whose *own* check passes.

    ``?passing`` alone is not enough: right after registration Consul can list an instance with
    only the node's ``serfHealth`` check (nomad#7736).
    """
    found: list[Endpoint] = []
    for entry in entries:
        service = entry.get("Service") or {}
        if (service.get("Meta") or {}).get("whago_user_id") != user_id:
            continue  # someone else's registration under our name: never route a tenant there
        own_check_passing = any(
            c.get("Name") == CHECK_NAME and c.get("ServiceID") == service.get("ID") and c.get("Status") == "passing"
            for c in entry.get("Checks") or []
        )
        if not own_check_passing:
            continue
        address = service.get("Address") or (entry.get("Node") or {}).get("Address")
        port = service.get("Port")
        if address and isinstance(port, int) and port > 0:
            found.append((address, port))
    return found


# ---------------------------------------------------------------------------- placement
def describe_metric(group: str, metric: Json) -> str:
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


def placement_failure(evals: list[Json]) -> str | None:
    """Why Nomad cannot place the job, from its evaluations; None if nothing says it failed."""
    if not evals:
        return None
    ordered = sorted(evals, key=lambda e: e.get("CreateIndex") or 0, reverse=True)
    newest = ordered[0]
    candidates = [newest]
    if newest.get("Status") == "blocked" and not newest.get("FailedTGAllocs"):
        # The blocked eval is the follow-up of the one that recorded the failure.
        candidates += [e for e in ordered if e.get("BlockedEval") == newest.get("ID")]
    for ev in candidates:
        failed = ev.get("FailedTGAllocs") or {}
        if failed:
            return " | ".join(describe_metric(g, m or {}) for g, m in sorted(failed.items()))
        if ev.get("Status") == "failed":
            return ev.get("StatusDescription") or "evaluation failed"
    return None

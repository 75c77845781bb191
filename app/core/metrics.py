"""WHAGO's domain metrics (Prometheus), on the default registry that ``/metrics`` exports.

Labels are low-cardinality by construction: event types, outcomes, statuses, job and operation
names from code, never a tenant, chip, session or proxy id. Counters and histograms are updated
where the work happens; the gauges that describe the whole platform (chips by status, queue
depth) are refreshed before a scrape from cheap aggregates shared through Redis, at most once per
``GAUGE_REFRESH_SECONDS`` across every process (see ``app.health.metrics``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_EVENTS = Counter(
    "whago_webhook_events", "WAHA webhook deliveries by event type and outcome.", ["event", "outcome"]
)
CHIPS = Gauge("whago_chips", "Chips by status (live chips, every tenant).", ["status"])
PROVISION_MAX_SECONDS = 600
PROVISION_SECONDS = Histogram(
    "whago_provision_duration_seconds",
    "From a chip being accepted to its first QR (waiting_qr).",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, PROVISION_MAX_SECONDS),
)
JOBS = Counter("whago_jobs", "Background jobs by name and outcome (complete, retried, failed).", ["job", "outcome"])
QUEUE_DEPTH = Gauge("whago_queue_depth", "Jobs waiting in the queue.", ["queue"])
SCHEDULER_REQUESTS = Counter(
    "whago_scheduler_requests", "Scheduler (Nomad) operations by outcome.", ["operation", "outcome"]
)
SCHEDULER_SECONDS = Histogram(
    "whago_scheduler_request_seconds",
    "Latency of scheduler operations.",
    ["operation"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
WAHA_REQUESTS = Counter("whago_waha_requests", "Calls to WAHA by operation and outcome.", ["operation", "outcome"])
WAHA_SECONDS = Histogram(
    "whago_waha_request_seconds",
    "Latency of calls to WAHA.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_DRIFT = Counter("whago_reconcile_drift", "Differences the reconciler found and fixed, by kind.", ["kind"])
MESSAGES = Counter("whago_messages", "Outgoing message status changes, by status.", ["status"])
PROXIES = Gauge("whago_proxies", "Proxies in the pool: total configured, usable (enabled and healthy).", ["state"])
PROXY_FREE_SLOTS = Gauge("whago_proxy_free_slots", "Chips the usable proxies can still take.")
READY = Gauge("whago_dependency_up", "1 when the dependency answered the last readiness check, else 0.", ["dependency"])
LIVENESS_PROBES = Counter(
    "whago_liveness_probes",
    "Liveness probes of quiet connected chips by outcome (ok, failed, unreachable, skipped).",
    ["outcome"],
)
SESSION_HEALS = Counter(
    "whago_session_heals",
    "Liveness heals by step (session, instance, give_up) and outcome (ok, failed).",
    ["step", "outcome"],
)
EVENT_STREAMS = Gauge("whago_event_streams", "Open live-event streams (this process).")

CHIP_STATUSES = ("provisioning", "starting", "waiting_qr", "connected", "disconnected", "failed", "deleting")
MESSAGE_STATUSES = ("pending", "sent", "delivered", "read", "failed")
WEBHOOK_OUTCOMES = ("ok", "duplicate", "ignored", "invalid_signature", "invalid")

# Series exist from the start (at 0), so rates and alerts work before the first event.
for _status in CHIP_STATUSES:
    CHIPS.labels(_status)
for _status in MESSAGE_STATUSES:
    MESSAGES.labels(_status)
for _outcome in ("ok", "failed", "unreachable", "skipped"):
    LIVENESS_PROBES.labels(_outcome)
for _step in ("session", "instance"):
    for _outcome in ("ok", "failed"):
        SESSION_HEALS.labels(_step, _outcome)
SESSION_HEALS.labels("give_up", "failed")
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_EVENTS.labels("session.status", _outcome)

# /api/sessions/chip_0123…/start → /api/sessions/{session}/start: one series per code path
# (chat and message ids arrive percent-encoded, ``%40`` for ``@``: phone numbers stay out of labels)
_ID_SEGMENT = re.compile(r"/(?:chip_[0-9a-fA-F]+|[0-9a-fA-F-]{32,36}|[^/]*(?:@|%40)[^/]*)(?=/|$)")


def waha_operation(method: str, path: str) -> str:
    return f"{method.upper()} {_ID_SEGMENT.sub('/{id}', path.split('?', 1)[0])}"


@contextmanager
def timed(histogram: Histogram, counter: Counter, operation: str, outcome_of=None) -> Iterator[None]:
    """Observe the block's latency under ``operation``; count it as ``ok`` or by ``outcome_of(exc)``."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = outcome_of(exc) if outcome_of else "error"
        raise
    finally:
        histogram.labels(operation).observe(time.perf_counter() - started)
        counter.labels(operation, outcome).inc()

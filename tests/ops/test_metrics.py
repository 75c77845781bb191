"""The domain metrics after a real flow: expected series with sane values, low-cardinality labels."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core import db
from tests.support.monitoring import series_used
from tests.support.platform import platform

pytestmark = pytest.mark.anyio

ID_LIKE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}|chip_[0-9a-f]{6}|@")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_a_chip_flow(tmp_path, clean_state):
    env = {"WHAGO_SCHEDULER": "local", "WHAGO_DEV_STATE_DIR": str(tmp_path)}
    async with platform(env) as p:
        await p.container.redis.flushdb()
        before = samples((await p.http.get("/metrics")).text)
        await p.waiting_chip()
        assert (await p.http.get("/health/ready")).status_code == 200
        bad = await p.http.post("/api/v1/webhooks/waha", content=b"{}", headers={"X-Webhook-Hmac": "00"})
        assert bad.status_code == 401
        await p.container.redis.flushdb()  # drop the shared gauge cache: this scrape recomputes
        response = await p.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = samples(response.text)
        # the platform shares its database with earlier tests: the gauge must match the table
        counts = {
            r["status"]: r["n"] for r in await db.fetch("SELECT status, count(*) AS n FROM chips GROUP BY status")
        }

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert counts.get("waiting_qr", 0) >= 1
    for status in ("waiting_qr", "connected", "failed", "deleting"):
        assert value(after, "whago_chips", status=status) == counts.get(status, 0)
    assert grew("whago_provision_duration_seconds_count") == 1
    assert 0 < grew("whago_provision_duration_seconds_sum") < 60
    assert grew("whago_jobs_total", job="provision_chip", outcome="complete") >= 1
    assert grew("whago_webhook_events_total", event="session.status", outcome="ok") >= 2  # STARTING, SCAN_QR_CODE
    assert grew("whago_webhook_events_total", event="unknown", outcome="invalid_signature") == 1
    assert grew("whago_scheduler_requests_total", operation="ensure_instance", outcome="ok") >= 1
    assert grew("whago_scheduler_request_seconds_count", operation="ensure_instance") >= 1
    waha_calls = {labels: v for (name, labels), v in after.items() if name == "whago_waha_requests_total"}
    assert sum(waha_calls.values()) > 0
    assert ("whago_queue_depth", (("queue", "whago"),)) in after
    assert ("whago_event_streams", ()) in after
    assert ("whago_messages_total", (("status", "sent"),)) in after
    # never a tenant, chip, session or proxy id in a label
    for name, labels in after:
        if name.startswith("whago_"):
            for _, label_value in labels:
                assert not ID_LIKE.search(label_value), (name, labels)

    # every series an alert rule or a dashboard panel uses (nomad/monitoring/) is exported
    exported = {name for name, _ in after}
    missing = {name: sorted(where) for name, where in series_used().items() if name not in exported}
    assert not missing, f"monitoring uses series WHAGO does not export: {missing}"

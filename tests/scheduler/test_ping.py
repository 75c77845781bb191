"""Readiness of the scheduler (what /health/ready reports)."""

from __future__ import annotations

import pytest

from app.scheduler import SchedulerUnavailable

pytestmark = pytest.mark.anyio


async def test_nomad_ping_needs_both_nomad_and_consul(make_nomad, double):
    scheduler = make_nomad()
    await scheduler.ping()
    double.consul_status = 503
    with pytest.raises(SchedulerUnavailable, match="Consul"):
        await scheduler.ping()
    double.consul_status = None
    double.nomad_status = 500
    with pytest.raises(SchedulerUnavailable):
        await scheduler.ping()
    double.nomad_status = None
    await scheduler.ping()


async def test_unreachable_nomad_is_not_ready(make_nomad):
    scheduler = make_nomad(nomad_addr="http://127.0.0.1:9", nomad_timeout_seconds=0.5)
    with pytest.raises(SchedulerUnavailable):
        await scheduler.ping()

"""Fixtures for scheduler tests: the Nomad+Consul double, Redis db 15, adapter factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from app.scheduler.nomad import NomadScheduler
from app.settings import Settings, load_settings
from tests.doubles import NomadConsulDouble, serve_double


@pytest.fixture
def base_settings() -> Settings:
    return load_settings()


@pytest.fixture
def double() -> Iterator[NomadConsulDouble]:
    with serve_double(check_interval=0.02, registration_gap=0.1) as served:
        yield served


@pytest.fixture
async def redis(base_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(base_settings.redis_url)
    yield client
    keys = [k async for k in client.scan_iter("whago:instance:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def make_nomad(base_settings: Settings, double: NomadConsulDouble, redis: aioredis.Redis) -> AsyncIterator[Any]:
    """``make_nomad(**setting_overrides)`` -> a NomadScheduler wired to the double; closed after."""
    created: list[NomadScheduler] = []

    def factory(redis_client: Any = redis, **overrides: Any) -> NomadScheduler:
        values = {
            "scheduler": "nomad",
            "nomad_addr": double.nomad_url,
            "consul_addr": double.consul_url,
            "nomad_timeout_seconds": 2.0,
            "instance_ready_timeout_seconds": 10.0,
        }
        values.update(overrides)
        scheduler = NomadScheduler(msgspec.structs.replace(base_settings, **values), redis_client)
        created.append(scheduler)
        return scheduler

    yield factory
    for scheduler in created:
        await scheduler.close()

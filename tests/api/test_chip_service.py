"""ChipService rules that no route can reach on its own: a user gone between the token check and
the create, and the tenant-facing error summary."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def service(settings, clean_state):
    from app.chips.service import ChipService
    from app.container import Container
    from app.core import db

    await db.start_pool(settings)
    container = Container.build(settings)
    try:
        yield ChipService(container)
    finally:
        await container.aclose()
        await db.close_pool()


async def test_creating_a_chip_for_a_user_that_is_gone_is_refused_and_writes_nothing(service, conn):
    from app.chips.schemas import ChipCreate
    from app.core.errors import NotAuthenticated

    with pytest.raises(NotAuthenticated):
        await service.create(uuid.uuid4(), ChipCreate(alias="ghost"))
    assert await conn.fetchval("SELECT count(*) FROM chips") == 0


def test_the_tenant_sees_the_summary_cut_at_160_characters_never_the_remote_text():
    from app.chips.service import tenant_error

    remote = "nomad: node 10.0.0.7 allocation 5e1f refused: job whago-waha-1234 out of memory"
    summary = "Provisioning failed after 4 attempts"
    assert tenant_error(f"{summary}: {remote}") == f"{summary}. Details are with the operators."
    long = "x" * 200
    assert tenant_error(f"{long}: {remote}") == "x" * 160 + ". Details are with the operators."
    assert tenant_error("y" * 200) == "y" * 160
    assert tenant_error("  padded  ") == "padded"
    assert tenant_error(None) is None

"""Per-tenant webhook routes and keys (issue 10): an event signed with tenant A's derived key, on
A's route or B's (or the platform route), never changes tenant B's chips; the platform-key route
keeps working for sessions configured before per-tenant keys."""

from __future__ import annotations

import uuid

import pytest

from app.core import db
from tests.support.api import get_chip, history, new_chip, register
from tests.support.errors import assert_error
from tests.support.webhooks import (
    KEY,
    deliver,
    envelope,
    metadata,
    new_event_id,
    status_event,
    tenant_hook,
    tenant_key,
)

pytestmark = pytest.mark.anyio


@pytest.fixture()
async def two(client) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    a = await register(client)
    b = await register(client)
    return (a, await new_chip(client, a)), (b, await new_chip(client, b))


def uid(user: dict) -> str:
    return user["user"]["id"]


async def assert_untouched(client, user: dict, chip: dict) -> None:
    got = await get_chip(client, user, chip)
    assert got["status"] == "provisioning"
    assert got["phone_number"] is None
    assert await history(client, user, chip) == []
    row = await db.fetchrow("SELECT last_activity_at FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
    assert row["last_activity_at"] is None


async def test_tenant_route_with_the_tenants_key_applies(client, two):
    (a, chip_a), _ = two
    response = await deliver(
        client, status_event(a, chip_a, "SCAN_QR_CODE"), path=tenant_hook(uid(a)), key=tenant_key(uid(a))
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
    assert (await get_chip(client, a, chip_a))["status"] == "waiting_qr"


async def test_the_derived_keys_differ_per_tenant_and_from_the_platform_key(two):
    (a, _), (b, _) = two
    assert len({tenant_key(uid(a)), tenant_key(uid(b)), KEY}) == 3


async def test_tenant_route_refuses_the_platform_key_and_another_tenants_key(client, two):
    (a, chip_a), (b, _) = two
    event = status_event(a, chip_a, "WORKING", phone="5511912345678")
    for key in (KEY, tenant_key(uid(b))):
        response = await deliver(client, event, path=tenant_hook(uid(a)), key=key)
        assert_error(response, 401, "invalid_signature")
    await assert_untouched(client, a, chip_a)


@pytest.mark.parametrize("event", ["session.status", "message"])
async def test_a_forged_event_for_b_signed_with_as_key_never_changes_b(client, two, event):
    (a, chip_a), (b, chip_b) = two
    key_a = tenant_key(uid(a))

    def forged(meta: dict) -> dict:
        if event == "message":
            return envelope(chip_b["session_name"], event="message", meta=meta, payload={"id": "m1", "body": "x"})
        me = {"id": "5511900000000@c.us", "pushName": "x"}
        return envelope(chip_b["session_name"], "WORKING", meta=meta, me=me)

    # on A's own route: signature fine, but A's route only reaches A's chips, whatever the
    # metadata claims (B's ids, or A's user id with B's chip)
    for meta in (metadata(b, chip_b), {"user_id": uid(a), "chip_id": chip_b["id"]}, None):
        response = await deliver(client, forged(meta), path=tenant_hook(uid(a)), key=key_a)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ignored"}
    # on B's route, and on the platform route: A's key does not verify
    for path in (tenant_hook(uid(b)), "/api/v1/webhooks/waha"):
        response = await deliver(client, forged(metadata(b, chip_b)), path=path, key=key_a)
        assert_error(response, 401, "invalid_signature")
    await assert_untouched(client, b, chip_b)
    await assert_untouched(client, a, chip_a)


async def test_a_cannot_claim_bs_event_ids_first(client, two):
    """Dedup keys are per tenant route: A replaying (or guessing) an id B's WAHA will send does not
    turn B's real event into a duplicate."""
    (a, _), (b, chip_b) = two
    event_id = new_event_id()
    stolen = status_event(b, chip_b, "WORKING", event_id=event_id, phone="5511900000000")
    first = await deliver(client, stolen, path=tenant_hook(uid(a)), key=tenant_key(uid(a)))
    assert first.json() == {"status": "ignored"}
    real = status_event(b, chip_b, "SCAN_QR_CODE", event_id=event_id)
    response = await deliver(client, real, path=tenant_hook(uid(b)), key=tenant_key(uid(b)))
    assert response.json() == {"status": "ok"}
    assert (await get_chip(client, b, chip_b))["status"] == "waiting_qr"
    again = await deliver(client, real, path=tenant_hook(uid(b)), key=tenant_key(uid(b)))
    assert again.json() == {"status": "duplicate"}


async def test_platform_route_keeps_working_for_older_sessions(client, two):
    (a, chip_a), _ = two
    response = await deliver(client, status_event(a, chip_a, "SCAN_QR_CODE"))  # platform key and route
    assert response.json() == {"status": "ok"}
    assert (await get_chip(client, a, chip_a))["status"] == "waiting_qr"


async def test_a_malformed_tenant_in_the_route_is_a_contract_error_not_a_500(client, two):
    (a, chip_a), _ = two
    response = await deliver(client, status_event(a, chip_a, "WORKING"), path="/api/v1/webhooks/waha/not-a-uuid")
    assert response.status_code in (400, 404), response.text
    assert set(response.json()) >= {"status_code", "detail", "code"}
    await assert_untouched(client, a, chip_a)

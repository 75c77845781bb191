"""Every paged listing: bounded ``limit``/``offset`` (400 in the contract's shape, nothing left open
on the database) and a ``total`` that stays right past the last page."""

from __future__ import annotations

import uuid

import pytest

from app.core.pagination import MAX_LIMIT, MAX_OFFSET, Page, paginate, total_from_page
from tests.support.api import add_chip, register
from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio

HUGE = "9" * 30  # far outside PostgreSQL's bigint: used to reach asyncpg and come back as a 500

# (path, who may call it)
PAGED_ROUTES = [
    ("/api/v1/admin/users", "admin"),
    ("/api/v1/admin/chips", "admin"),
    ("/api/v1/admin/instances", "admin"),
    ("/api/v1/admin/proxies", "admin"),
    ("/api/v1/chips", "tenant"),  # the chips list adopts app.core.pagination in the chips slice
]

BAD_QUERIES = [
    f"offset={HUGE}",
    f"limit={HUGE}",
    f"offset=-{HUGE}",
    f"offset={MAX_OFFSET + 1}",
    f"limit={MAX_LIMIT + 1}",
    "limit=0",
    "offset=-1",
    "limit=ten",
    "offset=1.5",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
@pytest.mark.parametrize(("path", "who"), PAGED_ROUTES, ids=[p for p, _ in PAGED_ROUTES])
async def test_out_of_range_paging_is_a_400(client, admin, conn, path, who, query):
    headers = admin["headers"] if who == "admin" else (await register(client))["headers"]
    assert_error(await client.get(f"{path}?{query}", headers=headers), 400, "validation_error")
    # the route still answers, and no pooled connection was left inside a transaction
    assert (await client.get(f"{path}?limit=1&offset={MAX_OFFSET}", headers=headers)).status_code == 200
    stuck = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    )
    assert stuck == 0


async def test_the_bounds_themselves_are_accepted(client, admin):
    for path, _ in PAGED_ROUTES[:4]:
        response = await client.get(f"{path}?limit={MAX_LIMIT}&offset={MAX_OFFSET}", headers=admin["headers"])
        assert response.status_code == 200, response.text


# ---------------------------------------------------------------------------- total past the last page
def page_of(response) -> tuple[list, int]:
    """(items, total) from a page body, or from a bare array plus X-Total-Count."""
    assert response.status_code == 200, response.text
    body = response.json()
    if isinstance(body, list):
        return body, int(response.headers["x-total-count"])
    return body["items"], body["total"]


async def assert_totals(client, admin, path: str, expected: int) -> None:
    for query, size in [
        ("", expected),
        ("limit=1", min(1, expected)),
        ("limit=1&offset=1", 1 if expected > 1 else 0),
        (f"limit={expected}", expected),  # a full page: only a count can tell whether more follow
        (f"offset={expected}", 0),  # just past the end
        ("limit=2&offset=50", 0),  # far past the end
        (f"offset={MAX_OFFSET}", 0),
    ]:
        items, total = page_of(await client.get(f"{path}?{query}", headers=admin["headers"]))
        assert (len(items), total) == (size, expected), (path, query)


async def test_admin_users_total_past_the_last_page(client, admin):
    for _ in range(2):
        await register(client)
    await assert_totals(client, admin, "/api/v1/admin/users", 3)
    body = (await client.get("/api/v1/admin/users?limit=2&offset=1", headers=admin["headers"])).json()
    assert (body["limit"], body["offset"]) == (2, 1)


async def test_admin_chips_total_past_the_last_page(client, admin, conn):
    tenant = await register(client)
    for status in ("connected", "waiting_qr", "connected"):
        await add_chip(conn, tenant["user"]["id"], status)
    await assert_totals(client, admin, "/api/v1/admin/chips", 3)
    items, total = page_of(await client.get("/api/v1/admin/chips?status=connected&offset=5", headers=admin["headers"]))
    assert (items, total) == ([], 2)  # the filters apply to the total too
    body = (await client.get("/api/v1/admin/chips?limit=2&offset=1", headers=admin["headers"])).json()
    assert (body["limit"], body["offset"]) == (2, 1)


async def test_admin_instances_total_past_the_last_page(client, admin, conn):
    for _ in range(3):
        user_id = uuid.UUID((await register(client))["user"]["id"])
        await conn.execute(
            "INSERT INTO instances (user_id, job_id, status) VALUES ($1, $2, 'running')",
            user_id,
            f"whago-waha-{user_id}",
        )
    await assert_totals(client, admin, "/api/v1/admin/instances", 3)


async def test_admin_proxies_total_past_the_last_page(client, admin):
    for port in (3128, 3129, 3130):
        created = await client.post(
            "/api/v1/admin/proxies",
            json={"scheme": "http", "host": "p.example", "port": port},
            headers=admin["headers"],
        )
        assert created.status_code == 201, created.text
    await assert_totals(client, admin, "/api/v1/admin/proxies", 3)


async def test_empty_listings_have_a_zero_total(client, admin):
    for path in ("/api/v1/admin/chips", "/api/v1/admin/instances", "/api/v1/admin/proxies"):
        for query in ("", "offset=10"):
            assert page_of(await client.get(f"{path}?{query}", headers=admin["headers"])) == ([], 0)


# ---------------------------------------------------------------------------- the helper itself
@pytest.mark.parametrize(
    ("returned", "limit", "offset", "expected"),
    [
        (0, 10, 0, 0),  # empty first page: nothing at all
        (3, 10, 0, 3),  # short first page: the whole list
        (3, 10, 20, 23),  # short later page: it ends the list
        (10, 10, 0, None),  # full page: more may follow
        (0, 10, 20, None),  # past the end: anything from 0 to 20
    ],
)
def test_total_from_page(returned, limit, offset, expected):
    assert total_from_page(returned, limit, offset) == expected


async def test_paginate_counts_only_when_the_page_cannot_tell():
    counted = []

    async def count() -> int:
        counted.append(1)
        return 42

    async def fetch(limit: int, offset: int) -> list[int]:
        return list(range(min(limit, max(0, 42 - offset))))

    assert await paginate(fetch, count, 10, 40) == Page(items=[0, 1], total=42, limit=10, offset=40)
    assert counted == []
    assert (await paginate(fetch, count, 10, 0)).total == 42
    assert (await paginate(fetch, count, 10, 100)).total == 42
    assert len(counted) == 2

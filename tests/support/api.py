"""Talking to the API as a tenant: register, set a plan, create and read chips and their history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx


async def register(client: httpx.AsyncClient, email: str | None = None, password: str = "correct horse") -> dict:
    """A new user; the body gains ``headers`` (bearer auth) and ``password``."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    body["password"] = password
    return body


async def set_plan(database_url: str, user_id: str, plan: str, is_admin: bool | None = None) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET plan = $2 WHERE id = $1", uuid.UUID(user_id), plan)
        if is_admin is not None:
            await conn.execute("UPDATE users SET is_admin = $2 WHERE id = $1", uuid.UUID(user_id), is_admin)
    finally:
        await conn.close()


async def new_chip(client: httpx.AsyncClient, user: dict, alias: str = "sales-1") -> dict:
    response = await client.post("/api/v1/chips", json={"alias": alias}, headers=user["headers"])
    assert response.status_code == 202, response.text
    return response.json()


async def get_chip(client: httpx.AsyncClient, user: dict, chip: dict) -> dict:
    response = await client.get(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    assert response.status_code == 200, response.text
    return response.json()


async def history(client: httpx.AsyncClient, user: dict, chip: dict, source: str | None = "webhook") -> list[dict]:
    """The chip's status history, newest first, only from ``source`` (None: every source)."""
    response = await client.get(f"/api/v1/chips/{chip['id']}/events?limit=500", headers=user["headers"])
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if source is None or e["source"] == source]


async def add_chip(
    # a chip row written straight into the database (any status, any age), for listing tests
    conn: Any,
    user_id: Any,
    status: str,
    *,
    alias: str | None = None,
    phone: str | None = None,
    age_seconds: float = 0,
) -> uuid.UUID:
    chip_id = uuid.uuid4()
    created = datetime.now(UTC) - timedelta(seconds=age_seconds)
    await conn.execute(
        "INSERT INTO chips (id, user_id, alias, status, session_name, phone_number, created_at, status_changed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        chip_id,
        uuid.UUID(str(user_id)),
        alias or f"c-{chip_id.hex[:6]}",
        status,
        "chip_" + chip_id.hex,
        phone,
        created,
    )
    return chip_id

"""Fuzzing the WAHA webhook receiver with generated and mutated envelopes, all correctly signed
(the signature is the first gate; past it, the parser and the apply statement must hold).

Never a 5xx; never a change to any chip from an invalid or foreign event; and afterwards the
receiver still applies a valid event at its usual speed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest

from tests.support.api import new_chip, register
from tests.support.webhooks import HOOK, envelope, sign

pytestmark = pytest.mark.anyio

# WHAGO_FUZZ_EXAMPLES (the long mode of tests/api/test_fuzz.py) raises this one too
EXAMPLES = max(150, int(os.environ.get("WHAGO_FUZZ_EXAMPLES", "0")))
FIELDS = ["id", "timestamp", "event", "session", "metadata", "me", "payload", "engine", "environment"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
huge = st.sampled_from(["x" * 100_000, "9" * 5000, "\u0000" * 100, "é" * 50_000])
weird_values = json_values | huge | st.integers(min_value=-(2**200), max_value=2**200)


def _deep(depth: int) -> str:
    # built as text: json.dumps itself cannot encode this deep
    return '{"a":[' * depth + '"bottom"' + "]}" * depth


async def _snapshot(conn) -> list[tuple]:
    rows = await conn.fetch(
        "SELECT id, status, phone_number, last_status_event_at, last_activity_at, updated_at FROM chips ORDER BY id"
    )
    events = await conn.fetchval("SELECT count(*) FROM chip_events")
    return [tuple(r) for r in rows] + [("history", events)]


async def _post(client, body: bytes) -> int:
    response = await client.post(HOOK, content=body, headers={"X-Webhook-Hmac": sign(body)})
    return response.status_code


@st.composite
def hostile_bodies(draw: Any, target: dict[str, str]) -> bytes:
    """A signed body that must change nothing: garbage, a truncated or deeply nested document, or a
    real-looking envelope for a session that does not exist or whose metadata names another tenant."""
    kind = draw(st.sampled_from(["garbage", "truncated", "deep", "mutated", "foreign", "unknown_event"]))
    base = envelope(f"chip_{uuid.uuid4().hex}", "WORKING")
    if kind == "garbage":
        return json.dumps(draw(weird_values)).encode()
    if kind == "deep":
        head = json.dumps({k: v for k, v in base.items() if k != "payload"})
        return (head[:-1] + ', "payload": ' + _deep(draw(st.integers(50, 5000))) + "}").encode()
    if kind == "truncated":
        raw = json.dumps(base).encode()
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "unknown_event":
        return json.dumps({**base, "event": draw(st.text(max_size=30)), "session": target["session"]}).encode()
    if kind == "foreign":
        # the real session name, but metadata naming someone else (or a malformed id)
        meta = draw(
            st.sampled_from(
                [
                    {"user_id": str(uuid.uuid4()), "chip_id": target["chip_id"]},
                    {"user_id": target["user_id"], "chip_id": str(uuid.uuid4())},
                    {"user_id": "not-a-uuid", "chip_id": target["chip_id"]},
                ]
            )
        )
        return json.dumps({**envelope(target["session"], "WORKING"), "metadata": meta}).encode()
    mutated = dict(base)
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
        mutated[field] = draw(weird_values)
    return json.dumps(mutated).encode()


async def _valid_round(client, session: str, meta: dict, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        body = json.dumps(
            envelope(session, "WORKING" if i % 2 else "SCAN_QR_CODE", meta=meta, at=int(time.time() * 1000) + i)
        ).encode()
        assert await _post(client, body) == 200
    return time.perf_counter() - started


async def test_hostile_signed_envelopes_change_nothing_and_never_fail(client, conn):
    user = await register(client)
    chip = await new_chip(client, user)
    target = {"session": chip["session_name"], "chip_id": chip["id"], "user_id": user["user"]["id"]}
    meta = {"user_id": target["user_id"], "chip_id": target["chip_id"]}
    before_speed = await _valid_round(client, target["session"], meta, 20)
    before = await _snapshot(conn)

    bodies: list[bytes] = []

    @hypothesis.given(body=hostile_bodies(target))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def collect(body: bytes) -> None:
        bodies.append(body)

    collect()
    statuses = [await _post(client, body) for body in bodies]
    assert len(bodies) >= EXAMPLES // 2
    assert [s for s in statuses if s >= 500] == []
    assert await _snapshot(conn) == before

    # still applying valid events, and not slower than before the storm
    after_speed = await _valid_round(client, target["session"], meta, 20)
    assert after_speed < before_speed * 3 + 0.5, (before_speed, after_speed)
    got = (await client.get(f"/api/v1/chips/{chip['id']}", headers=user["headers"])).json()
    assert got["status"] == "connected"

"""Property-based fuzzing of WHAGO's own API (schemathesis over the served OpenAPI document), and a
tenant-isolation sweep generated from the same document, so a new route is covered automatically.

Every operation is called with generated input, once as a tenant and once as an operator (admin
routes are exercised, not just answered 403), with half of the path ids replaced by ids that exist
(so the code behind the 404 runs too). Checks: never a 5xx, 2xx bodies match the documented
schema, every 4xx carries the contract's error body. ``WHAGO_FUZZ_EXAMPLES`` raises the example
count for a long local run (default: a few per operation, to keep CI fast).

The webhook receiver (signed, fuzzed in test_fuzz_webhooks.py) and the event stream (long-lived)
are left out here.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.support.api import set_plan

EXAMPLES = int(os.environ.get("WHAGO_FUZZ_EXAMPLES", "12"))
SKIPPED_PATHS = ("/api/v1/webhooks/", "/api/v1/events", "/metrics", "/schema")
ERROR_KEYS = {"status_code", "detail", "code"}
# A valid body per route whose generated bodies rarely pass WHAGO's own validation: the isolation
# sweep must reach the ownership check, not stop at a 400.
VALID_BODIES: dict[str, Any] = {
    "POST /api/v1/chips/{chip_id}/messages": {"to": "5511999999999", "text": "hello"},
    "POST /api/v1/chips/{chip_id}/pairing-code": {"phone_number": "5511999999999"},
    "PATCH /api/v1/chips/{chip_id}": {"alias": "renamed"},
}


def _fuzzable(operation: Any) -> bool:
    return not any(operation.path.startswith(p) for p in SKIPPED_PATHS)


def _operations(schema: Any) -> list[Any]:
    return [op for op in (r.ok() for r in schema.get_all_operations()) if _fuzzable(op)]


def _register(http: httpx.Client) -> dict:
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    response = http.post("/api/v1/auth/register", json={"email": email, "password": "password-123"})
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


def _error_body_problem(response: Any) -> str | None:
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} with a non-JSON body: {response.text[:200]!r}"
    if not isinstance(body, dict) or not set(body) >= ERROR_KEYS:
        return f"{response.status_code} without the contract's error body: {str(body)[:200]}"
    if body["status_code"] != response.status_code:
        return f"error body says {body['status_code']} on a {response.status_code}"
    return None


@pytest.fixture(scope="module")
def world(api_server, migrated_db) -> Iterator[dict[str, Any]]:
    """Two tenants (A with a chip) and an operator, over the real HTTP server."""
    import asyncio

    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        tenant_a, tenant_b, admin = _register(http), _register(http), _register(http)
        asyncio.run(set_plan(migrated_db, admin["user"]["id"], "free", is_admin=True))
        chip = http.post("/api/v1/chips", json={"alias": "fuzz"}, headers=tenant_a["headers"])
        assert chip.status_code == 202, chip.text
        proxy = http.post(
            "/api/v1/admin/proxies",
            json={"scheme": "http", "host": "127.0.0.1", "port": 9, "country": "br", "max_chips": 1},
            headers=admin["headers"],
        )
        assert proxy.status_code == 201, proxy.text
        yield {
            "url": api_server.url,
            "schema": schemathesis.openapi.from_url(f"{api_server.url}/schema/openapi.json"),
            "a": tenant_a,
            "b": tenant_b,
            "admin": admin,
            # path parameter name -> an id that exists (A's, or the operator's proxy)
            "known": {
                "chip_id": chip.json()["id"],
                "target_user_id": tenant_a["user"]["id"],
                "user_id": tenant_a["user"]["id"],
                "proxy_id": proxy.json()["id"],
            },
        }


def _for_each_case(operation: Any, examples: int, check: Any) -> None:
    """Run ``check(case)`` on ``examples`` generated cases of one operation (deterministic)."""

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: Any) -> None:
        check(case)

    run()


def _fuzz(world: dict[str, Any], headers: dict[str, str]) -> list[str]:
    failures: list[str] = []
    for operation in _operations(world["schema"]):
        name = f"{operation.method.upper()} {operation.path}"

        def check(case: Any, name: str = name) -> None:
            for param in list(case.path_parameters or {}):
                if param in world["known"] and random.random() < 0.5:
                    case.path_parameters[param] = world["known"][param]
            response = case.call(base_url=world["url"], headers=headers, timeout=15)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
                )
            except BaseException as exc:  # schemathesis raises an exception group
                failures.append(f"{name}: {str(exc)[:600]}")
            problem = _error_body_problem(response)
            if problem:
                failures.append(f"{name}: {problem}")

        _for_each_case(operation, EXAMPLES, check)
    return failures


def test_fuzz_the_api_as_a_tenant(world):
    failures = _fuzz(world, world["a"]["headers"])
    assert not failures, "\n".join(failures[:30])


def test_fuzz_the_api_as_an_operator(world):
    failures = _fuzz(world, world["admin"]["headers"])
    assert not failures, "\n".join(failures[:30])


def test_no_route_lets_one_tenant_reach_anothers_ids(world):
    """Every operation with an id in its path, called by tenant B with A's ids: a 404 (tenant
    routes) or a 403 (operator routes), never a 2xx and never A's data."""
    a_ids = {v for v in world["known"].values()}
    checked = 0
    problems: list[str] = []
    for operation in _operations(world["schema"]):
        params = [p for p in operation.path_parameters] if operation.path_parameters else []
        names = [p.name for p in params]
        if not names:
            continue
        admin_route = operation.path.startswith("/api/v1/admin/")
        statuses: set[int] = set()

        def check(case: Any, operation: Any = operation, statuses: set[int] = statuses) -> None:
            for param in list(case.path_parameters or {}):
                if param in world["known"]:
                    case.path_parameters[param] = world["known"][param]
            response = case.call(base_url=world["url"], headers=world["b"]["headers"], timeout=15)
            statuses.add(response.status_code)
            text = response.text
            if 200 <= response.status_code < 300:
                problems.append(f"{operation.method.upper()} {operation.path}: {response.status_code} for B")
            leaked = [i for i in a_ids if i in text]
            if leaked and response.status_code != 400:
                problems.append(f"{operation.method.upper()} {operation.path}: A's id in B's answer")

        _for_each_case(operation, 5, check)
        name = f"{operation.method.upper()} {operation.path}"
        if name in VALID_BODIES:
            ids = {p: world["known"][p] for p in names if p in world["known"]}
            check(operation.Case(path_parameters=ids, body=VALID_BODIES[name], media_type="application/json"))
        expected = 403 if admin_route else 404
        if expected not in statuses:
            problems.append(f"{operation.method.upper()} {operation.path}: never {expected} (got {sorted(statuses)})")
        checked += 1
    assert checked >= 8, f"only {checked} id routes found: is the OpenAPI document complete?"
    assert not problems, "\n".join(problems)

"""The error contract every API error response follows (api.md): one checker for all tests."""

from __future__ import annotations

import httpx

from tests.support.env import SECRETS


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """Check ``response`` is a contract error with ``status`` and ``code``; return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    assert set(body) <= {"status_code", "detail", "code", "extra"}, body
    assert "Traceback" not in response.text
    for secret in SECRETS:
        assert secret not in response.text, "a configured secret leaked into an error response"
    return body

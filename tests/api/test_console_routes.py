"""WHAGO serves the web console: the app at / and at any other non-API GET path (deep links), its
files under /assets/, a Content-Security-Policy of its own origin only; API paths keep JSON errors."""

from __future__ import annotations

import pytest

from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "path", ["/", "/login", "/chips", "/chips/0b7c0e9e-0000-4000-8000-000000000000", "/admin/audit"]
)
async def test_console_paths_answer_the_app_with_a_self_only_policy(client, path):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/assets/js/main.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "http" not in policy  # no other origin anywhere in the policy


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/assets/js/main.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/i18n/pt-BR.json", "application/json"),
    ],
)
async def test_console_files_are_served_with_their_types(client, path, media_type):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize(
    "path", ["/assets/nope.js", "/assets/%2e%2e/controller.py", "/assets/js/%2e%2e/%2e%2e/controller.py"]
)
async def test_missing_or_escaping_asset_paths_are_json_404s(client, path):
    assert_error(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/nope"), ("POST", "/api/v1/nope"), ("GET", "/api/v2/chips"), ("GET", "/health/nope")],
)
async def test_api_paths_keep_their_json_404(client, method, path):
    assert_error(await client.request(method, path), 404, "not_found")


async def test_other_methods_on_console_paths_are_not_the_app(client):
    assert_error(await client.post("/chips"), 404, "not_found")

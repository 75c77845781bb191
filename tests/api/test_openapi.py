"""API docs that work offline: the UI's assets come from WHAGO itself; the document declares auth,
the contract's error body and words on every operation; validation messages read as sentences."""

from __future__ import annotations

import re

import pytest

from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_docs_page_loads_every_asset_from_whago(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "SwaggerUIBundle" in html
    # nothing from another host: every script, stylesheet and icon is served here
    external = re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""", html)
    assert external == []
    assets = re.findall(r"""(?:src|href)\s*=\s*["'](/[^"']+)""", html)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100, asset
    bundle = await client.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js")))
    # Swagger UI 5: renders OpenAPI 3.1 (4.x refuses the document)
    assert re.search(rb'"5\.\d+\.\d+"', bundle.content)


async def test_document_has_security_errors_and_words(client):
    doc = (await client.get("/schema/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status_code", "detail", "code"}
    seen = 0
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            seen += 1
            where = f"{method.upper()} {path}"
            assert " " in op["summary"], where  # a sentence, not a bare handler name
            assert op.get("description"), f"{where}: no description (add it to app.openapi.OPERATIONS)"
            public = path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/plans") or not path.startswith(
                "/api/v1/"
            )
            if path.startswith("/api/v1/") and not public and "webhooks" not in path:
                assert op["security"], where
                assert "401" in op["responses"], where
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", where
            if path.startswith("/api/v1/admin"):
                assert "403" in op["responses"], where
            if "{" in path:
                assert "404" in op["responses"], where
    assert seen > 25
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert "429" in login["responses"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (None, "body", "is required"),
        ({}, "alias", "is required"),
        ({"alias": ""}, "alias", "must not be empty"),
        ({"alias": 5}, "alias", "must be a string"),
        ({"alias": "a", "bogus": 1}, "bogus", "is not a known field"),
    ],
)
async def test_validation_messages_name_the_field_and_what_was_expected(client, body, field, words):
    from tests.support.api import register

    user = await register(client)
    response = await client.post("/api/v1/chips", json=body, headers=user["headers"])
    error = assert_error(response, 400, "validation_error")
    assert f"{field} {words}" in error["detail"]
    assert {"key": field, "message": error["extra"][0]["message"], "source": "body"} == error["extra"][0]
    assert "'data'" not in response.text


async def test_a_regular_expression_never_reaches_the_client(client, admin):
    response = await client.post(
        "/api/v1/admin/proxies", json={"scheme": "http", "host": "bad host!", "port": 80}, headers=admin["headers"]
    )
    error = assert_error(response, 400, "validation_error")
    assert "host has an invalid format" in error["detail"]
    assert "regex" not in response.text
    assert "^" not in response.text

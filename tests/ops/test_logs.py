"""Structured logs: JSON lines with the request id (following the work into jobs), and no secret in
any line of a whole flow, at DEBUG level, whoever logs it."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from cryptography.fernet import Fernet

from app.core import db, logs
from app.settings import load_settings
from tests.support.platform import platform

pytestmark = pytest.mark.anyio


def test_text_and_json_formats_carry_the_request_id_and_redact(tmp_path):
    from app.core import context

    settings = load_settings(
        {"WHAGO_DEV_STATE_DIR": str(tmp_path), "WHAGO_SECRET_KEY": "s" * 40, "WHAGO_LOG_FORMAT": "json"}
    )
    stream = io.StringIO()
    handler = logs.build_handler(settings, stream)
    logger = logging.getLogger("whago.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with context.work("req-42"):
            logger.warning("calling with Bearer abc.def.ghi and key %s", "s" * 40)
        logger.warning("GET /api/v1/events?token=xyz123&x=1 postgresql://u:pw1234@db/x")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req-42"
    assert first["level"] == "warning"
    assert first["logger"] == "whago.test.logs"
    assert first["time"].endswith("Z")
    assert "abc.def.ghi" not in first["message"]
    assert "s" * 40 not in first["message"]
    assert second["request_id"] is None
    assert "xyz123" not in second["message"]
    assert "pw1234" not in second["message"]
    text_settings = load_settings({"WHAGO_DEV_STATE_DIR": str(tmp_path), "WHAGO_LOG_FORMAT": "text"})
    assert text_settings.effective_log_format == "text"
    production = load_settings(
        {
            "WHAGO_ENV": "production",
            "WHAGO_SECRET_KEY": "p" * 40,
            "WHAGO_WEBHOOK_HMAC_KEY": "h" * 40,
            "WHAGO_WAHA_API_KEY": "a" * 40,
            "WHAGO_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
    )
    assert production.effective_log_format == "json"


async def test_no_secret_in_any_log_line_of_a_flow(tmp_path, clean_state):
    planted = {
        "WHAGO_SECRET_KEY": "planted-secret-key-" + uuid.uuid4().hex,
        "WHAGO_WEBHOOK_HMAC_KEY": "planted-hmac-key-" + uuid.uuid4().hex,
        "WHAGO_WAHA_API_KEY": "planted-waha-key-" + uuid.uuid4().hex,
        "WHAGO_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WHAGO_LOG_FORMAT": "json",
        "WHAGO_SCHEDULER": "local",
        "WHAGO_DEV_STATE_DIR": str(tmp_path),
    }
    proxy_password = "planted-proxy-pw-" + uuid.uuid4().hex[:12]
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logs.build_handler(load_settings(planted), stream)
    levels = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "saq")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("httpx", "httpcore", "saq"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    seen: list[str] = []
    try:
        async with platform(planted) as p:
            tenant = await p.tenant()
            seen.append(tenant["access_token"])
            admin = await p.tenant()
            await db.fetch("UPDATE users SET is_admin = true WHERE id = $1", uuid.UUID(admin["user"]["id"]))
            proxy = await p.http.post(
                "/api/v1/admin/proxies",
                json={"scheme": "http", "host": "10.9.9.9", "port": 3128, "username": "u", "password": proxy_password},
                headers=admin["headers"],
            )
            assert proxy.status_code == 201
            created = await p.http.post(
                "/api/v1/chips", json={"alias": "logged"}, headers={**tenant["headers"], "X-Request-ID": "req-flow-1"}
            )
            assert created.status_code == 202
            assert created.headers["x-request-id"] == "req-flow-1"
            await p.wait_status(tenant, created.json()["id"], "waiting_qr")
            token = (await p.http.post("/api/v1/auth/stream-token", headers=tenant["headers"])).json()["token"]
            seen.append(token)
            async with p.http.stream("GET", f"/api/v1/events?token={token}") as events:
                assert events.status_code == 200
                async for _ in events.aiter_lines():
                    break
            bad = await p.http.post("/api/v1/webhooks/waha", content=b"{}", headers={"X-Webhook-Hmac": "0" * 128})
            assert bad.status_code == 401
            login = await p.http.post(
                "/api/v1/auth/login", json={"email": tenant["user"]["email"], "password": "wrong-planted-pw"}
            )
            assert login.status_code == 401
            seen.append(admin["access_token"])
            # the proxy's password is encrypted with this test's key: leave no such row behind
            removed = await p.http.delete(f"/api/v1/admin/proxies/{proxy.json()['id']}", headers=admin["headers"])
            assert removed.status_code == 204
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) > 20
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    secrets = [v for k, v in planted.items() if "KEY" in k] + [proxy_password, "wrong-planted-pw", *seen]
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"secret in log line: {line[:300]}"
    # the request id followed the chip's provisioning into the worker's job
    job_lines = [e for e in entries if e["request_id"] == "req-flow-1" and e["logger"].startswith("saq")]
    assert job_lines, "no worker log line carries the request's id"

"""``whago dev`` end to end, as a new developer uses it: the real command in a subprocess, on a
scratch database (this run's test database name + ``_devcheck``), the suite's Redis db and a
temporary state dir, driven over HTTP only.

register -> create chip -> waiting_qr by itself -> QR -> scan on the tenant's emulator (its URL
from GET /api/v1/admin/instances after ``whago create-admin`` promotes the user) -> connected ->
send a message -> restart ``whago dev`` -> the chip comes back connected with no new QR (the
emulators keep sessions under WHAGO_DEV_STATE_DIR) -> message again -> logout -> disconnected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from app.core.tenant_keys import API_KEY_PURPOSE, derive
from tests.support.asgi_server import free_port
from tests.support.dev_server import DevServer as Dev
from tests.support.dev_server import drop_database, poll
from tests.support.env import TEST_DATABASE_URL, TEST_REDIS_URL

pytestmark = pytest.mark.slow

# Derived from this run's own test database and Redis (WHAGO_TEST_*), so that parallel runs (one
# per engineer or CI job) never drop or flush each other's state. Sharing the suite's Redis db is
# safe: tests run one at a time and every other test starts by flushing it anyway.
DEV_DATABASE_URL = os.environ.get("WHAGO_DEVCHECK_DATABASE_URL", TEST_DATABASE_URL + "_devcheck")
DEV_REDIS_URL = os.environ.get("WHAGO_DEVCHECK_REDIS_URL", TEST_REDIS_URL)
EMAIL, PASSWORD = "dev@example.com", "devpassword"
PHONE = "5511988887777"


@pytest.fixture
def dev(tmp_path) -> Iterator[Dev]:
    drop_database(DEV_DATABASE_URL)
    sync_redis.Redis.from_url(DEV_REDIS_URL).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHAGO_")}  # not the test suite's settings
    env.update(
        {
            "WHAGO_DATABASE_URL": DEV_DATABASE_URL,
            "WHAGO_REDIS_URL": DEV_REDIS_URL,
            "WHAGO_DEV_STATE_DIR": str(tmp_path / "state"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    server = Dev(env, free_port(), tmp_path / "dev.log")
    try:
        yield server
    finally:
        server.kill()  # the graceful stop is checked in the test; here only speed matters


def test_whago_dev_walkthrough_survives_a_restart(dev: Dev, tmp_path) -> None:
    dev.start()
    http = httpx.Client(base_url=dev.url, timeout=10)

    registered = http.post("/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    user_id = registered.json()["user"]["id"]

    created = http.post("/api/v1/chips", json={"alias": "sales-1"}, headers=auth)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "provisioning", created.text
    chip_id, session = created.json()["id"], created.json()["session_name"]

    def chip() -> dict:
        return http.get(f"/api/v1/chips/{chip_id}", headers=auth).json()

    poll("the chip to wait for a QR", chip, lambda c: c["status"] == "waiting_qr")
    qr = http.get(f"/api/v1/chips/{chip_id}/qr", headers=auth).json()
    assert qr["status"] == "waiting_qr"
    assert qr["qr_code"].startswith("data:image/png;base64,")
    png = http.get(f"/api/v1/chips/{chip_id}/qr", headers={**auth, "Accept": "image/png"})
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")

    # the operator view gives the tenant's emulator URL; it takes an admin
    assert http.get("/api/v1/admin/instances", headers=auth).status_code == 403
    # the account registered above is ours: promoting it takes --promote-existing (and revokes its tokens)
    promoted = dev.cli("create-admin", EMAIL, "--password", PASSWORD, "--promote-existing")
    assert promoted.returncode == 0, promoted.stderr
    assert f"promoted admin {EMAIL}" in promoted.stdout, promoted.stdout
    # earlier tokens revoked: the server sees it within 5 s (its revocation cache)
    poll(
        "the old token to be refused", lambda: http.get("/api/v1/auth/me", headers=auth).status_code, lambda c: c == 401
    )
    relogin = http.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert relogin.status_code == 200, relogin.text
    auth = {"Authorization": f"Bearer {relogin.json()['access_token']}"}

    def emulator_url() -> str | None:
        rows = http.get("/api/v1/admin/instances", headers=auth).json()
        mine = [r for r in rows if r["user_id"] == user_id and r["status"] == "running"]
        return mine[0]["base_url"] if mine else None

    emulator = poll("the tenant's instance in the admin list", emulator_url, bool)
    # the emulator's control endpoints take the instance's API key, like WAHA's own routes: the
    # tenant's own key, derived from the platform one (app.core.tenant_keys)
    platform_key = json.loads((tmp_path / "state" / "dev-secrets.json").read_text())["waha_api_key"]
    waha_key = {"X-Api-Key": derive(platform_key, API_KEY_PURPOSE, user_id)}
    scanned = httpx.post(
        f"{emulator}/_emulator/sessions/{session}/scan", json={"phone": PHONE}, headers=waha_key, timeout=5
    )
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["status"] == "WORKING", scanned.text

    connected = poll("the chip to connect", chip, lambda c: c["status"] == "connected")
    assert connected["phone_number"] == PHONE
    sent = http.post(f"/api/v1/chips/{chip_id}/messages", json={"to": "5511912345678", "text": "hello"}, headers=auth)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "sent", sent.text
    # the local emulator acks it (SERVER, DEVICE, READ): the README walk-through's "read"
    message_url = f"/api/v1/chips/{chip_id}/messages/{sent.json()['id']}"
    poll("the message to be read", lambda: http.get(message_url, headers=auth).json(), lambda m: m["status"] == "read")
    sessions = httpx.get(f"{emulator}/_emulator/sessions", headers=waha_key, timeout=5).json()
    assert [m["body"] for m in sessions[0]["sent"]] == ["hello"]

    stored = tmp_path / "state" / "emulators" / f"whago-waha-{user_id}" / f"{session}.json"
    assert json.loads(stored.read_text())["auth"]["id"] == f"{PHONE}@c.us"

    # ---- restart whago dev: nothing survives in memory; the link is on disk
    dev.stop()
    dev.start()

    # the same token still works: the generated secrets live in the state dir too
    # The restored session reports STARTING then WORKING. WAHA delivers each event on its own, so
    # WORKING may land first: then STARTING is recorded as stale and the chip never leaves
    # "connected". Either way the new instance's STARTING shows up in the history.
    def since_link() -> list[dict]:
        items = http.get(f"/api/v1/chips/{chip_id}/events", headers=auth).json()["items"]
        return items[: next(i for i, e in enumerate(items) if e["from_status"] == "waiting_qr")]

    poll(
        "the restored session's STARTING",
        since_link,
        lambda items: any("WAHA STARTING" in (e["detail"] or "") for e in items),
    )
    back = poll("the chip to be connected again", chip, lambda c: c["status"] == "connected")
    assert back["phone_number"] == PHONE
    # since the scan: only WAHA's webhooks, and never a QR again
    assert {e["source"] for e in since_link()} <= {"webhook"}
    assert "waiting_qr" not in [e["to_status"] for e in since_link()]

    new_emulator = poll("the tenant's instance after the restart", emulator_url, bool)
    restored = httpx.get(f"{new_emulator}/_emulator/sessions", headers=waha_key, timeout=5).json()
    assert [(s["name"], s["status"], s["qr_count"]) for s in restored] == [(session, "WORKING", 0)]

    again = http.post(
        f"/api/v1/chips/{chip_id}/messages", json={"to": "5511912345678", "text": "still here"}, headers=auth
    )
    assert again.status_code == 202, again.text

    logout = http.post(f"/api/v1/chips/{chip_id}/logout", headers=auth)
    assert logout.status_code == 202, logout.text
    gone = poll("the chip to be disconnected", chip, lambda c: c["status"] == "disconnected")
    assert gone["phone_number"] is None
    assert http.get(f"/api/v1/chips/{chip_id}/qr", headers=auth).json()["qr_code"] is None
    assert json.loads(stored.read_text())["auth"] is None  # the link is forgotten on disk too

    # nothing secret in what the developer sees scroll by
    secrets = json.loads((tmp_path / "state" / "dev-secrets.json").read_text())
    log = dev.log.read_text(errors="replace")
    for name in ("webhook_hmac_key", "waha_api_key", "secret_key", "encryption_key"):
        assert secrets[name] not in log, f"{name} leaked into the dev log"
    assert PASSWORD not in log
    http.close()


def test_ctrl_c_with_an_open_event_stream_stops_quickly_and_quietly(dev: Dev) -> None:
    dev.start()
    http = httpx.Client(base_url=dev.url, timeout=10)
    registered = http.post("/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    token = http.post("/api/v1/auth/stream-token", headers=auth).json()["token"]
    received: list[str] = []
    with httpx.stream("GET", f"{dev.url}/api/v1/events?token={token}", timeout=30) as stream:
        lines = stream.iter_lines()
        received.append(next(lines))  # ": connected": the stream is open
        before = len(dev.log.read_text(errors="replace").splitlines())
        assert dev.process is not None
        started = time.monotonic()
        dev.process.send_signal(signal.SIGINT)
        received.extend(lines)  # ends when the server closes the stream
        dev.process.wait(timeout=20)
        took = time.monotonic() - started
    assert dev.process.returncode == 0, dev.tail()
    assert took < 3, f"stop took {took:.1f}s"
    # the client was told, with a quick-reconnect hint, before the stream ended
    assert ": server shutting down; reconnect" in received
    assert "retry: 1000" in received
    after_signal = dev.log.read_text(errors="replace").splitlines()[before:]
    assert [line for line in after_signal if "WARNING" in line or "ERROR" in line or "Traceback" in line] == []
    assert len([line for line in after_signal if "shutting down" in line.lower()]) == 1, after_signal
    http.close()


def test_readme_walkthrough_runs_twice_in_bash(dev: Dev, tmp_path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Walk through it with curl", 1)[1]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    dev.start()
    env = {"PATH": os.environ["PATH"], "API": dev.url, "HOME": str(tmp_path)}
    for attempt in (1, 2):  # the second run meets the account and the chip of the first
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"run {attempt}:\n{result.stdout}\n{result.stderr}\n{dev.tail()}"
        out = result.stdout.split()
        assert "waiting_qr" in out, result.stdout
        assert "5511999990000" in out, result.stdout
        assert "read" in out, result.stdout  # the message reached "read"
        assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG")

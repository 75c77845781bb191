"""WahaClient against mocked HTTP (pytest-httpx): error mapping, fallbacks, headers, no secret leaks."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from app.core.errors import Conflict, DependencyUnavailable, NotFound
from app.waha import (
    ProxyConfig,
    WahaClient,
    WahaClientPool,
    WahaConflict,
    WahaNotFound,
    WahaRejected,
    WahaSessionExists,
    WahaUnavailable,
    build_session_config,
    chip_id_from_session,
    session_name,
)

pytestmark = pytest.mark.anyio

BASE = "http://waha.test:3000"
KEY = "super-secret-api-key-value"
HMAC = "super-secret-hmac-key-value"
PROXY_PASSWORD = "proxy-password-value"
DTO = {"name": "chip_x", "status": "STARTING", "config": {}}


@pytest.fixture
async def waha():
    async with WahaClient(BASE, KEY, timeout=3.0) as client:
        yield client


async def create(waha: WahaClient, start: bool = True):
    return await waha.create_session(
        "chip_x",
        start=start,
        metadata={"user_id": "u", "chip_id": "c"},
        proxy=ProxyConfig.from_parts("10.0.0.1", 3128, "bob", PROXY_PASSWORD),
        webhook_url="http://api/api/v1/webhooks/waha",
        hmac_key=HMAC,
        retry_attempts=5,
        retry_delay_seconds=3,
    )


async def test_headers_and_explicit_timeout(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/api/sessions/chip_x", json={**DTO, "presence": None, "timestamps": {"activity": None}}
    )
    info = await waha.get_session("chip_x")
    assert info.status == "STARTING"
    assert info.me is None
    request = httpx_mock.get_request()
    assert request.headers["X-Api-Key"] == KEY
    timeout = request.extensions["timeout"]
    assert timeout["connect"] == 3.0
    assert timeout["read"] == 3.0


async def test_lifecycle_calls_get_the_longer_timeout(httpx_mock) -> None:
    # WAHA waits 3 s after every stop (1 s more after an unpair): stop/restart/logout/PUT/DELETE
    # and create-with-start must not share the 3 s budget of a read
    async with WahaClient(BASE, KEY, timeout=3.0, lifecycle_timeout=12.0) as client:
        for action in ("stop", "restart", "logout"):
            httpx_mock.add_response(url=f"{BASE}/api/sessions/chip_x/{action}", json=DTO, status_code=201)
            await getattr(client, f"{action}_session")("chip_x")
        httpx_mock.add_response(url=f"{BASE}/api/sessions/chip_x", method="DELETE")
        await client.delete_session("chip_x")
        httpx_mock.add_response(url=f"{BASE}/api/sessions/chip_x", method="GET", json=DTO)
        await client.get_session("chip_x")
    reads = [r.extensions["timeout"]["read"] for r in httpx_mock.get_requests()]
    assert reads == [12.0, 12.0, 12.0, 12.0, 3.0]
    assert all(r.extensions["timeout"]["connect"] == 3.0 for r in httpx_mock.get_requests())


async def test_stop_of_an_unknown_session_is_not_found(waha: WahaClient, httpx_mock) -> None:
    # recent WAHA answers it with an empty 201 (no exists check in its stop handler)
    httpx_mock.add_response(url=f"{BASE}/api/sessions/chip_x/stop", status_code=201, content=b"")
    with pytest.raises(WahaNotFound):
        await waha.stop_session("chip_x")


async def test_start_of_a_running_session_answers_it_as_it_is(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/api/sessions/chip_x/start",
        status_code=422,
        json={"statusCode": 422, "message": "Session 'chip_x' is already started.", "error": "Unprocessable Entity"},
    )
    httpx_mock.add_response(url=f"{BASE}/api/sessions/chip_x", json={**DTO, "status": "FAILED"})
    assert (await waha.start_session("chip_x")).status == "FAILED"


@pytest.mark.parametrize(
    ("exception", "status"),
    [
        (httpx.ConnectError("refused"), None),
        (httpx.ReadTimeout("slow"), None),
        (httpx.RemoteProtocolError("eof"), None),
        (None, 500),
        (None, 502),
        (None, 503),
    ],
)
async def test_unreachable_or_5xx_is_unavailable(waha: WahaClient, httpx_mock, exception, status) -> None:
    if exception is not None:
        httpx_mock.add_exception(exception)
        if isinstance(exception, httpx.RemoteProtocolError):
            httpx_mock.add_exception(exception)  # a read is retried once on a fresh connection
    else:
        httpx_mock.add_response(status_code=status, json={"statusCode": status, "message": "boom"})
    with pytest.raises(WahaUnavailable) as caught:
        await waha.list_sessions()
    assert isinstance(caught.value, DependencyUnavailable)
    assert caught.value.status_code == 503
    assert caught.value.waha_status == status


async def test_404_and_422_mapping(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        status_code=404, json={"statusCode": 404, "message": "Session not found", "error": "Not Found"}
    )
    with pytest.raises(WahaNotFound) as not_found:
        await waha.start_session("chip_x")
    assert isinstance(not_found.value, NotFound)
    assert "Session not found" in not_found.value.detail

    httpx_mock.add_response(
        status_code=422, json={"statusCode": 422, "message": "Can get QR code only in SCAN_QR_CODE"}
    )
    with pytest.raises(WahaConflict) as conflict:
        await waha.get_qr_raw("chip_x")
    assert isinstance(conflict.value, Conflict)
    assert conflict.value.status_code == 409
    assert not isinstance(conflict.value, WahaSessionExists)


async def test_delete_treats_404_as_done(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(method="DELETE", status_code=404, json={"message": "Session not found"})
    assert await waha.delete_session("chip_x") is None


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_other_4xx_is_rejected_without_leaking_secrets(waha: WahaClient, httpx_mock, status) -> None:
    # Even if WAHA echoed our secrets back, they must not reach the exception text.
    echo = f"bad key {KEY}; hmac {HMAC}; proxy {PROXY_PASSWORD}"
    httpx_mock.add_response(status_code=status, json={"statusCode": status, "message": [echo, "second"]})
    with pytest.raises(WahaRejected) as caught:
        await create(waha)
    error = caught.value
    assert error.status_code == 502
    assert error.waha_status == status
    assert error.code == "waha_rejected"
    for secret in (KEY, HMAC, PROXY_PASSWORD):
        assert secret not in str(error)
        assert secret not in repr(error)
    assert "second" in error.detail


async def test_create_falls_back_to_put_with_same_config_then_starts(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/api/sessions",
        status_code=422,
        json={"statusCode": 422, "message": "Session 'chip_x' already exists. Use PUT to update it."},
    )
    httpx_mock.add_response(method="PUT", url=f"{BASE}/api/sessions/chip_x", json={**DTO, "status": "STOPPED"})
    httpx_mock.add_response(method="POST", url=f"{BASE}/api/sessions/chip_x/start", status_code=201, json=DTO)
    result = await create(waha)
    assert result.status == "STARTING"
    post, put, start = httpx_mock.get_requests()
    posted, updated = json.loads(post.content), json.loads(put.content)
    assert posted["name"] == "chip_x"
    assert posted["start"] is True
    assert updated == {"config": posted["config"]}  # the full config again
    assert start.url.path == "/api/sessions/chip_x/start"
    hook = posted["config"]["webhooks"][0]
    assert hook["hmac"] == {"key": HMAC}
    assert hook["retries"] == {"policy": "exponential", "delaySeconds": 3, "attempts": 5}
    assert posted["config"]["proxy"] == {"server": "10.0.0.1:3128", "username": "bob", "password": PROXY_PASSWORD}


async def test_create_put_fallback_does_not_start_when_not_asked(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        method="POST", status_code=422, json={"message": "Session 'chip_x' already exists. Use PUT to update it."}
    )
    httpx_mock.add_response(method="PUT", json={**DTO, "status": "STOPPED"})
    assert (await create(waha, start=False)).status == "STOPPED"
    assert len(httpx_mock.get_requests()) == 2


async def test_other_422_on_create_is_not_retried_as_put(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(
        method="POST", status_code=422, json={"message": "WAHA Core support only 'default' session"}
    )
    with pytest.raises(WahaConflict):
        await create(waha)
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": "true_1@c.us_AAA", "body": "hi"}, "true_1@c.us_AAA"),  # WAMessage
        ({"id": {"_serialized": "true_1@c.us_BBB"}}, "true_1@c.us_BBB"),  # whatsapp-web.js object
        ({"key": {"remoteJid": "1@s.whatsapp.net", "fromMe": True, "id": "CCC"}, "status": 1}, "CCC"),  # NOWEB
        (None, None),  # the empty 201 of WAHA 2025.6.5
    ],
)
async def test_send_text_handles_engine_shapes(waha: WahaClient, httpx_mock, body, expected) -> None:
    if body is None:
        httpx_mock.add_response(method="POST", status_code=201, content=b"")
    else:
        httpx_mock.add_response(method="POST", status_code=201, json=body)
    sent = await waha.send_text("chip_x", "+55 11 91234-5678", "hi")
    assert sent["id"] == expected
    assert sent["raw"] == body
    request = json.loads(httpx_mock.get_request().content)
    assert request == {"session": "chip_x", "chatId": "5511912345678@c.us", "text": "hi"}


async def test_qr_png_binary_or_base64_json(waha: WahaClient, httpx_mock) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    httpx_mock.add_response(content=png, headers={"content-type": "image/png"})
    assert await waha.get_qr_png("chip_x") == png
    assert httpx_mock.get_requests()[0].headers["accept"] == "image/png"
    httpx_mock.add_response(json={"mimetype": "image/png", "data": base64.b64encode(png).decode()})
    assert await waha.get_qr_png("chip_x") == png


async def test_undecodable_success_body_is_rejected(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(json={"unexpected": True})
    with pytest.raises(WahaRejected):
        await waha.get_session("chip_x")
    httpx_mock.add_response(content=b"<html>proxy page</html>")
    with pytest.raises(WahaRejected):
        await waha.list_sessions()


async def test_ping_never_raises(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(url=f"{BASE}/ping", json={"message": "pong"})
    assert await waha.ping() is True
    httpx_mock.add_exception(httpx.ConnectError("refused"))
    assert await waha.ping() is False


async def test_pairing_code_sends_digits(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_response(url=f"{BASE}/api/chip_x/auth/request-code", status_code=201, json={"code": "ABCD-EFGH"})
    assert await waha.request_pairing_code("chip_x", "+55 (11) 91234-5678") == "ABCD-EFGH"
    assert json.loads(httpx_mock.get_request().content) == {"phoneNumber": "5511912345678"}


async def test_pool_reuses_one_client_per_base_url() -> None:
    pool = WahaClientPool(KEY, timeout=2.0)
    first = pool.get("http://a:3000/")
    assert pool.get("http://a:3000") is first
    assert pool.get("http://b:3000") is not first
    await pool.aclose()
    assert first._http.is_closed


def test_session_names_round_trip() -> None:
    chip_id = uuid.uuid4()
    name = session_name(chip_id)
    assert name == "chip_" + chip_id.hex
    assert len(name) <= 54
    assert all(ch.isalnum() or ch == "_" for ch in name)
    assert name == name.lower()
    assert chip_id_from_session(name) == chip_id
    for other in ("default", "chip_", "chip_" + chip_id.hex.upper(), "chip_" + chip_id.hex + "0", "x" + name):
        assert chip_id_from_session(other) is None


def test_session_config_without_optional_parts() -> None:
    config = build_session_config(metadata={"user_id": "u"}, webhook_url="http://h/w", hmac_key=None)
    assert config == {
        "metadata": {"user_id": "u"},
        "webhooks": [
            {
                "url": "http://h/w",
                "events": ["session.status", "message", "message.ack"],
                "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 8},
            }
        ],
    }
    assert PROXY_PASSWORD not in repr(ProxyConfig(server="h:1", password=PROXY_PASSWORD))


def test_webjs_sessions_turn_on_tags_events_for_message_ack() -> None:
    """WAHA's WEBJS engine emits message.ack only with webjs.tagsEventsOn (waha.md §1.3)."""
    webjs = build_session_config(metadata={}, webhook_url="http://h/w", hmac_key=None, engine="WEBJS")
    assert webjs["webjs"] == {"tagsEventsOn": True}
    assert "message.ack" in webjs["webhooks"][0]["events"]
    for engine in ("GOWS", "NOWEB", None):
        assert "webjs" not in build_session_config(metadata={}, webhook_url="http://h/w", hmac_key=None, engine=engine)
    no_acks = build_session_config(
        metadata={}, webhook_url="http://h/w", hmac_key=None, engine="WEBJS", events=("session.status",)
    )
    assert "webjs" not in no_acks


async def test_a_read_timeout_on_a_send_is_maybe_sent_not_unreachable(waha: WahaClient, httpx_mock) -> None:
    from app.waha import WahaTimedOut, WahaUnavailable

    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    with pytest.raises(WahaTimedOut):
        await waha.send_text("s", "5511999999999", "hi")
    httpx_mock.add_exception(httpx.ConnectTimeout("down"))
    with pytest.raises(WahaUnavailable) as caught:
        await waha.send_text("s", "5511999999999", "hi")
    assert not isinstance(caught.value, WahaTimedOut)


async def test_a_stale_keep_alive_connection_is_retried_once_for_reads(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_exception(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    httpx_mock.add_response(url=f"{BASE}/api/sessions?all=true", json=[])
    assert await waha.list_sessions(all=True) == []
    assert len(httpx_mock.get_requests()) == 2


async def test_writes_are_never_resent(waha: WahaClient, httpx_mock) -> None:
    httpx_mock.add_exception(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    with pytest.raises(WahaUnavailable):
        await waha.restart_session("chip_x")
    assert len(httpx_mock.get_requests()) == 1

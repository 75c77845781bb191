"""Contract: what the client sends and what the emulator answers (and delivers by webhook) must match
WAHA's official OpenAPI document (``../shared/reference/waha-openapi.json``, WAHA 2026.7.1).

The document is NestJS-generated OpenAPI 3.0 labelled 3.1, so two 3.0 idioms are translated first
("dialect", not leniency): ``nullable: true`` and property-level ``required: true``. Where real WAHA
is looser than its spec, the deviation is listed once, in ``RELAXATIONS``; a test proves each entry
is still needed, so the list cannot silently grow stale.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.waha import ProxyConfig, WahaClient, WahaConflict, WahaError
from tests.support.reference import reference_file
from tests.support.waha import API_KEY, HMAC_KEY, Emu
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

SPEC_NAME = "waha-openapi.json"  # ../shared/reference, see tests/support/reference.py
SCHEMAS = "/components/schemas"

# (JSON pointer into the spec, change, why). The only place where we accept WAHA != its spec.
RELAXATIONS: list[tuple[str, str, str]] = [
    (f"{SCHEMAS}/SessionInfo/properties/me", "nullable", "waha.md: `me` is null until the session is logged in"),
    (
        f"{SCHEMAS}/WAHAWebhookSessionStatus/properties/me",
        "nullable",
        "waha.md §4.3: the envelope's `me` is null when not authenticated",
    ),
    (f"{SCHEMAS}/WebhookConfig/properties/hmac", "nullable", "waha.md: unset webhook sub-objects echo as null"),
    (f"{SCHEMAS}/WebhookConfig/properties/retries", "nullable", "waha.md: unset webhook sub-objects echo as null"),
    (
        f"{SCHEMAS}/WebhookConfig/properties/customHeaders",
        "nullable",
        "waha.md: unset webhook sub-objects echo as null",
    ),
    (f"{SCHEMAS}/WebhookConfig/properties/events/items", "string", "waha.md: events are event-name strings"),
    (
        f"{SCHEMAS}/WAHAWebhookSessionStatus/properties/event",
        "string",
        "the event name is a string (the spec's own enum and default are strings, its type says object)",
    ),
    (f"{SCHEMAS}/WAHAWebhookMessage/properties/event", "string", "as above"),
    (f"{SCHEMAS}/WAHAWebhookMessageAck/properties/event", "string", "as above"),
    (
        f"{SCHEMAS}/WAMessageAckBody/properties/participant",
        "nullable",
        "participant is only set in groups (as in WAMessage, whose spec says so); null for a direct chat",
    ),
    (
        f"{SCHEMAS}/WAMessage/required",
        "unrequire:source,participant,mediaUrl",
        "the schema's own descriptions: source only on fromMe events, participant only in groups, "
        "mediaUrl only with media; WAHA omits them otherwise",
    ),
]
# SessionInfo.timestamps.activity needs no entry: the spec itself marks it `nullable`.

# The spec documents no error answers at all. WAHA's own (from its source and a real server,
# waha.md §3.1 and §4.8): NestJS exceptions `{statusCode, message, error}`, and the session pipes'
# wrong-status 422 `{error, session, status, expected}` (no statusCode/message), sent after waiting
# up to 5 s for the expected status (src/core/abc/manager.abc.ts WAIT_STATUS_TIMEOUT).
NEST_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["statusCode", "message"],
    "properties": {
        "statusCode": {"type": "integer"},
        "message": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "error": {"type": "string"},
    },
}
WRONG_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["error", "session", "status", "expected"],
    "additionalProperties": False,
    "properties": {
        "error": {"const": "Session status is not as expected. Try again later or restart the session"},
        "session": {"type": "string"},
        "status": {"enum": ["STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED"]},
        "expected": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
}
NOT_RUNNING = {
    **NEST_ERROR,
    "properties": {**NEST_ERROR["properties"], "message": {"pattern": "Please start it first"}},
}
# (method, path regex, status, body schema, WAHA source). Any other error answer fails the test.
ERRORS: list[tuple[str, str, int, dict[str, Any], str]] = [
    ("GET", r"/api/[^/]+/auth/qr", 404, NOT_RUNNING, "SessionPipe -> manager.getSession() on a STOPPED session"),
    ("POST", r"/api/[^/]+/auth/request-code", 404, NOT_RUNNING, "as above"),
    ("POST", r"/api/sendText", 404, NOT_RUNNING, "as above"),
    ("GET", r"/api/sessions/[^/]+/me", 404, NOT_RUNNING, "SessionParam on a STOPPED session (RUN-2411)"),
    ("GET", r"/api/[^/]+/auth/qr", 422, WRONG_STATUS, "waits for SCAN_QR_CODE, then 422"),
    ("POST", r"/api/sendText", 422, WRONG_STATUS, "WorkingSessionPipe: waits for WORKING, then 422"),
    ("POST", r"/api/sessions", 422, NEST_ERROR, "create: 'Session '<name>' already exists. Use PUT…'"),
    ("POST", r"/api/sessions/[^/]+/start", 422, NEST_ERROR, "start of a running (FAILED too) session"),
    ("GET", r"/api/sessions/[^/]+", 404, NEST_ERROR, "get: 'Session not found'"),
]

# Where the emulator knowingly differs from real WAHA (one place; each with its reason):
NOT_EMULATED: list[tuple[str, str]] = [
    (
        "lifecycle latencies",
        "stop/restart/PUT take 3 s and logout 4 s in WAHA; 0 unless REALISTIC_TIMINGS "
        "(`whago emulator --realistic`), so the suite stays fast; the client's timeouts assume WAHA's",
    ),
    ("wrong-status wait", "WAHA waits 5 s (the emulator's default); the tests configure 0.2 s"),
    (
        "engine",
        "only GOWS is emulated (WHAGO's engine): NOWEB's STARTING re-sent every ~2 s without a "
        "network, WEBJS's STARTING<->FAILED flapping and NOWEB's FAILED after 20 restarts are not",
    ),
    ("global webhooks", "WHATSAPP_HOOK_URL & co are not emulated: WHAGO configures per-session webhooks only"),
    ("create without start", "the emulator starts (OAS default true), WAHA 2024.10 did not; WHAGO always sends it"),
    ("passkeys", "PASSKEY_* statuses (GOWS 2026.7) are not emulated; WHAGO records them without moving a chip"),
    (
        "webhook transport",
        "per-try timeout is the emulator's own (WAHA's is not in its source we have); "
        "every non-2xx and network error is retried (WAHA's sender retries on any error)",
    ),
    (
        "shutdown delivery",
        "STOPPED webhooks of a graceful shutdown get shutdown_grace_seconds; WAHA's "
        "process may exit before they are sent (they are fire-and-forget)",
    ),
]


def _dialect(node: Any) -> Any:
    """OpenAPI 3.0 idioms -> JSON Schema 2020-12."""
    if isinstance(node, list):
        return [_dialect(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _dialect(value) for key, value in node.items()}
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = [
            name for name, prop in properties.items() if isinstance(prop, dict) and prop.get("required") is True
        ]
        if required:
            node["required"] = sorted(set(node.get("required", [])) | set(required))
    if isinstance(node.get("required"), bool) and "in" not in node:  # "in": a parameter, not a schema
        del node["required"]
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


def _resolve(doc: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]
    parent = doc
    for part in parts[:-1]:
        parent = parent[part]
    return parent, parts[-1]


def _apply(doc: dict[str, Any], pointer: str, change: str) -> None:
    parent, key = _resolve(doc, pointer)
    if change == "nullable":
        parent[key] = {"anyOf": [parent[key], {"type": "null"}]}
    elif change == "string":
        parent[key] = {**parent[key], "type": "string"}
    elif change.startswith("unrequire:"):
        dropped = set(change.split(":", 1)[1].split(","))
        assert dropped <= set(parent[key]), f"{pointer}: nothing to relax"
        parent[key] = [name for name in parent[key] if name not in dropped]
    else:
        raise ValueError(change)


@cache
def base_spec() -> dict[str, Any]:
    """The spec in JSON Schema dialect, no relaxations. Never mutated."""
    return _dialect(json.loads(reference_file(SPEC_NAME).read_text()))


@cache
def spec(skip: int | None = None) -> dict[str, Any]:
    """The spec with every relaxation applied, except number ``skip``."""
    doc = copy.deepcopy(base_spec())
    for index, (pointer, change, _) in enumerate(RELAXATIONS):
        if index != skip:
            _apply(doc, pointer, change)
    return doc


def errors(doc: dict[str, Any], pointer: str, instance: Any) -> list[str]:
    registry = Registry().with_resource("urn:waha", Resource.from_contents(doc, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": "urn:waha#" + pointer}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec operation for a concrete request: (pointer, operation). Literal segments win."""
    candidates = []
    for template, ops in base_spec()["paths"].items():
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if method.lower() in ops and re.match(regex, path):
            literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
            candidates.append((literal, template))
    assert candidates, f"{method} {path} is not in WAHA's spec"
    template = max(candidates)[1]
    return f"/paths/{_escape(template)}/{method.lower()}", base_spec()["paths"][template][method.lower()]


class Sample:
    def __init__(self, label: str, pointer: str, instance: Any, schema: dict[str, Any] | None = None) -> None:
        self.label, self.pointer, self.instance, self.schema = label, pointer, instance, schema


def error_schema(method: str, path: str, status: int) -> dict[str, Any]:
    for m, pattern, code, schema, _ in ERRORS:
        if m == method and code == status and re.fullmatch(pattern, path):
            return schema
    raise AssertionError(f"{method} {path} answered {status}: not an error WAHA's source gives (see ERRORS)")


def check(sample: Sample, doc: dict[str, Any]) -> list[str]:
    if sample.schema is not None:
        validator = Draft202012Validator(sample.schema)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(sample.instance)]
    return errors(doc, sample.pointer, sample.instance)


class Recorder:
    """httpx event hooks: every request body the client sends and every response it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.responses: list[tuple[str, str, int, str, bytes]] = []

    async def on_request(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path, request.content))

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.responses.append(
            (
                request.method,
                request.url.path,
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
            )
        )

    def samples(self) -> tuple[list[Sample], list[str]]:
        samples, unchecked = [], []
        for method, path, body in self.requests:
            if body:
                pointer, op = operation(method, path)
                assert "requestBody" in op, f"{method} {path}: the spec takes no body"
                samples.append(
                    Sample(
                        f"request {method} {path}",
                        pointer + "/requestBody/content/application~1json/schema",
                        json.loads(body),
                    )
                )
        for method, path, status, content_type, body in self.responses:
            pointer, op = operation(method, path)
            declared = op["responses"].get(str(status))
            if status >= 400:
                unchecked.append(f"{method} {path} {status}")
                schema = error_schema(method, path, status)
                samples.append(Sample(f"error {method} {path} {status}", "", json.loads(body), schema))
                continue
            assert declared is not None, f"{method} {path}: status {status} is not in the spec"
            if not body and method == "POST" and path.endswith("/stop"):
                unchecked.append(f"{method} {path} {status} (empty: WAHA's stop of an unknown session)")
                continue
            if content_type.startswith("image/png"):
                assert "image/png" in declared["content"]
                assert body.startswith(b"\x89PNG")
            elif "content" in declared:
                samples.append(
                    Sample(
                        f"response {method} {path} {status}",
                        pointer + f"/responses/{status}/content/application~1json/schema",
                        json.loads(body),
                    )
                )
            else:
                unchecked.append(f"{method} {path} {status} (no response schema in the spec)")
        return samples, unchecked


@pytest.fixture
async def recorded(emulator: Emu, receiver_factory) -> tuple[list[Sample], list[str]]:
    """Drive every client call once against the emulator; collect all traffic and webhooks."""
    recorder = Recorder()
    receiver, hook_url = receiver_factory()
    http = httpx.AsyncClient(event_hooks={"request": [recorder.on_request], "response": [recorder.on_response]})
    waha = WahaClient(emulator.url, API_KEY, timeout=5.0, http=http)
    name = "chip_contract"
    kwargs = dict(
        start=True,
        metadata={"user_id": "u", "chip_id": "c"},
        proxy=ProxyConfig(server="10.1.1.1:3128", username="u", password="p" * 8),
        webhook_url=hook_url,
        hmac_key=HMAC_KEY,
        retry_attempts=3,
        retry_delay_seconds=0.05,
    )
    try:
        assert await waha.ping()
        await waha.server_version()
        await waha.create_session(name, **{**kwargs, "start": False})
        for call in (
            lambda: waha.get_qr_raw(name),
            lambda: waha.request_pairing_code(name, "5511999998888"),
            lambda: waha.send_text(name, "5511977776666", "too early"),
            lambda: waha._call("GET", f"/api/sessions/{name}/me", None),
            lambda: waha.get_session("chip_nobody"),
            lambda: waha.stop_session("chip_nobody"),
        ):
            with pytest.raises(WahaError):  # 404s of a STOPPED or unknown session
                await call()
        await waha.start_session(name)
        await emulator.wait_status(name, "SCAN_QR_CODE")
        await http.post(f"{emulator.url}/api/sessions/{name}/start", headers={"X-Api-Key": API_KEY})  # 422
        with pytest.raises(WahaConflict):
            await waha.send_text(name, "5511977776666", "not linked yet")  # 422 after the wait
        await waha.create_session(name, **kwargs)
        await waha.create_session(name, **kwargs)  # 422 -> PUT
        await emulator.wait_status(name, "SCAN_QR_CODE")
        await waha.get_qr_raw(name)
        await waha.get_qr_png(name)
        await http.get(
            f"{emulator.url}/api/{name}/auth/qr",
            params={"format": "image"},  # Base64File fallback
            headers={"X-Api-Key": API_KEY, "Accept": "application/json"},
        )
        await waha.request_pairing_code(name, "5511999998888")
        control = {"X-Api-Key": API_KEY}
        await http.post(f"{emulator.url}/_emulator/sessions/{name}/scan", headers=control)
        with pytest.raises(WahaConflict):
            await waha.get_qr_raw(name)  # 422 after the wait
        await http.post(f"{emulator.url}/_emulator/sessions/{name}/message", json={"text": "hi"}, headers=control)
        sent = await waha.send_text(name, "5511977776666", "hello", message_id="3EB0C0FFEE0123456789AB")
        await waha.send_image(
            name, "5511977776666", "https://example.com/cat.jpg", "image/jpeg", filename="cat.jpg", caption="a cat"
        )
        await waha.send_file(name, "5511977776666@c.us", "https://example.com/doc.pdf", "application/pdf")
        for ack in (1, 2, 3, -1):
            await http.post(
                f"{emulator.url}/_emulator/sessions/{name}/messages/{sent['id']}/ack",
                json={"ack": ack},
                headers=control,
            )
        assert (await waha.get_message(name, "5511977776666", sent["id"]))["ack"] == -1
        await waha.get_session(name)
        await waha.list_sessions()
        await waha.list_sessions(all=False)
        await eventually(lambda: any(b'"event":"message"' in b for _, b in receiver.accepted()), what="message webhook")
        await eventually(
            lambda: sum(b'"event":"message.ack"' in b for _, b in receiver.accepted()) == 4, what="message.ack webhooks"
        )
        # A config without hmac/retries, as another WAHA client may have left it: echoes nulls.
        await waha.update_session(
            name, {"metadata": {"user_id": "u"}, "webhooks": [{"url": hook_url, "events": ["session.status"]}]}
        )
        for action in (waha.stop_session, waha.start_session, waha.restart_session, waha.logout_session):
            await action(name)
        await waha.get_session(name)
        await waha.delete_session(name)
        await waha.delete_session(name)
    finally:
        await http.aclose()
    recorder.responses = [r for r in recorder.responses if not r[1].startswith("/_emulator/")]
    recorder.requests = [r for r in recorder.requests if not r[1].startswith("/_emulator/")]
    samples, unchecked = recorder.samples()
    for _, body in receiver.accepted():
        envelope = json.loads(body)
        pointer = f"/webhooks/{_escape(envelope['event'])}/post/requestBody/content/application~1json/schema"
        samples.append(Sample(f"webhook {envelope['event']}", pointer, envelope))
    return samples, unchecked


async def test_traffic_matches_waha_spec(recorded) -> None:
    samples, unchecked = recorded
    labels = {s.label.rsplit(" ", 1)[0] if s.label.startswith("response") else s.label for s in samples}
    # every call the client relies on was actually checked, not skipped
    for expected in [
        "request POST /api/sessions",
        "request PUT /api/sessions/chip_contract",
        "request POST /api/sendText",
        "request POST /api/sendImage",
        "request POST /api/sendFile",
        "request POST /api/chip_contract/auth/request-code",
        "response POST /api/sessions",
        "response PUT /api/sessions/chip_contract",
        "response GET /api/sessions/chip_contract",
        "response GET /api/sessions",
        "response POST /api/sessions/chip_contract/start",
        "response POST /api/sessions/chip_contract/logout",
        "response GET /api/chip_contract/auth/qr",
        "response POST /api/sendText",
        "response POST /api/sendImage",
        "response POST /api/sendFile",
        "response GET /api/server/version",
        "response GET /ping",
        "webhook session.status",
        "webhook message",
        "webhook message.ack",
    ]:
        assert expected in labels, f"{expected} was not validated"
    assert any(label.startswith("response GET /api/chip_contract/chats/") for label in labels)
    for expected_error in [
        "error GET /api/chip_contract/auth/qr 404",
        "error GET /api/chip_contract/auth/qr 422",
        "error POST /api/chip_contract/auth/request-code 404",
        "error POST /api/sendText 404",
        "error POST /api/sendText 422",
        "error GET /api/sessions/chip_contract/me 404",
        "error POST /api/sessions 422",
        "error POST /api/sessions/chip_contract/start 422",
        "error GET /api/sessions/chip_nobody 404",
    ]:
        assert expected_error in {s.label for s in samples}, f"{expected_error} was not validated"
    assert "POST /api/sessions/chip_nobody/stop 201 (empty: WAHA's stop of an unknown session)" in unchecked
    failures = {s.label: errs for s in samples if (errs := check(s, spec()))}
    assert not failures, json.dumps(failures, indent=1)


async def test_every_relaxation_is_still_needed(recorded) -> None:
    samples, _ = recorded
    for index, (pointer, change, _) in enumerate(RELAXATIONS):
        doc = spec(index)
        assert any(check(s, doc) for s in samples if s.schema is None), f"relaxation {pointer} ({change}) is unused"


async def test_validator_rejects_broken_bodies(recorded) -> None:
    samples, _ = recorded
    info = next(s for s in samples if s.label == "response GET /api/sessions/chip_contract 200")
    envelope = next(s for s in samples if s.label == "webhook session.status")
    broken = [
        (info, {**info.instance, "status": "CONNECTED"}),
        (info, {k: v for k, v in info.instance.items() if k != "timestamps"}),
        (envelope, {k: v for k, v in envelope.instance.items() if k != "environment"}),
        (envelope, {**envelope.instance, "payload": {**envelope.instance["payload"], "statuses": None}}),
    ]
    for sample, instance in broken:
        assert errors(spec(), sample.pointer, instance), f"{sample.label}: a broken body passed"
    wrong = next(s for s in samples if s.label == "error POST /api/sendText 422")
    nest_shaped = {"statusCode": 422, "message": wrong.instance["error"], "error": "Unprocessable Entity"}
    assert check(Sample(wrong.label, "", nest_shaped, wrong.schema), spec()), "a NestJS body passed as WAHA's 422"

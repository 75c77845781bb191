"""Plain ASGI front of the emulator: WAHA's routes, auth, error bodies, faults, control endpoints.

Plain ASGI (no framework) keeps start-up instant and gives exact control over status codes, raw
bytes and headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import types
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec

from app.waha.emulator.core import FAULT_MODES, EmulatedSession, Emulator, EmulatorConfig, EmulatorError

_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}
_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_WEBHOOK_EVENTS = {
    "session.status",
    "message",
    "message.reaction",
    "message.any",
    "message.ack",
    "message.ack.group",
    "message.waiting",
    "message.revoked",
    "message.edited",
    "state.change",
    "group.join",
    "group.leave",
    "group.v2.join",
    "group.v2.leave",
    "group.v2.update",
    "group.v2.participants",
    "presence.update",
    "poll.vote",
    "poll.vote.failed",
    "chat.archive",
    "call.received",
    "call.accepted",
    "call.rejected",
    "label.upsert",
    "label.deleted",
    "label.chat.added",
    "label.chat.deleted",
    "event.response",
    "event.response.failed",
    "engine.event",
    "*",
}
_CONFIG_KEYS = ("metadata", "proxy", "debug", "ignore", "client", "noweb", "gows", "webjs", "webhooks")


class Request:
    def __init__(self, scope: dict[str, Any], body: bytes, params: dict[str, str]) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        self.body = body
        self.params = params

    def json(self, *, required: bool = True) -> dict[str, Any]:
        if not self.body.strip():
            if required:
                raise EmulatorError(400, ["body must be a JSON object"])
            return {}
        try:
            data = msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            raise EmulatorError(400, "Invalid JSON body") from None
        if not isinstance(data, dict):
            raise EmulatorError(400, ["body must be a JSON object"])
        return data


class Response:
    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers or {}

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, msgspec.json.encode(data))


def _error(status: int, message: str | list[str], own_body: dict[str, Any] | None = None) -> Response:
    if own_body is not None:  # WAHA's own shape (the 422 wrong-status answer has no statusCode)
        return Response.json(own_body, status)
    # NestJS HttpException body, as WAHA sends it.
    body: dict[str, Any] = {"message": message, "statusCode": status}
    if status != 401 and status in _REASONS:
        body = {"message": message, "error": _REASONS[status], "statusCode": status}
    return Response.json(body, status)


Handler = Callable[[Request], Awaitable[Response]]


async def read_body(receive: Any) -> bytes:
    """The whole request body of a raw ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class EmulatorApp:
    """The ASGI callable. ``.state.emulator`` (and ``.emulator``) is the live ``Emulator``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.emulator = Emulator(config)
        self.state = types.SimpleNamespace(emulator=self.emulator)
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        r = self._route
        r("GET", "/ping", self.ping, auth=False)
        r("GET", "/health", self.health)
        r("GET", "/api/server/version", self.version)
        r("GET", "/api/version", self.version)
        r("GET", "/api/sessions", self.list_sessions)
        r("POST", "/api/sessions", self.create_session)
        r("GET", "/api/sessions/{session}", self.get_session)
        r("PUT", "/api/sessions/{session}", self.update_session)
        r("DELETE", "/api/sessions/{session}", self.delete_session)
        r("GET", "/api/sessions/{session}/me", self.get_me)
        for action in ("start", "stop", "restart", "logout"):
            r("POST", f"/api/sessions/{{session}}/{action}", self._action(action))
        r("GET", "/api/{session}/auth/qr", self.get_qr)
        r("POST", "/api/{session}/auth/request-code", self.request_code)
        r("POST", "/api/sendText", self.send_text)
        r("POST", "/api/sendImage", self.send_image)
        r("POST", "/api/sendFile", self.send_file)
        r("GET", "/api/{session}/chats/{chat_id}/messages/{message_id}", self.get_chat_message)
        r("GET", "/api/contacts/check-exists", self.check_exists)
        # Control surface for tests and `whago dev`: no API key, never affected by faults.
        r("GET", "/_emulator/sessions", self.ctl_dump, auth=True)
        r("GET", "/_emulator/events", self.ctl_events, auth=True)
        r("POST", "/_emulator/sessions/{session}/scan", self.ctl_scan, auth=True)
        r("POST", "/_emulator/sessions/{session}/fail", self.ctl_fail, auth=True)
        r("POST", "/_emulator/sessions/{session}/disconnect", self.ctl_disconnect, auth=True)
        r("POST", "/_emulator/sessions/{session}/message", self.ctl_message, auth=True)
        r("POST", "/_emulator/sessions/{session}/messages/{message_id}/ack", self.ctl_ack, auth=True)
        r("POST", "/_emulator/sessions/{session}/flap", self.ctl_flap, auth=True)
        r("POST", "/_emulator/sessions/{session}/fault", self.ctl_session_fault, auth=True)
        r("GET", "/_emulator/phones/{phone}/devices", self.ctl_linked_devices, auth=True)
        r("POST", "/_emulator/fault", self.ctl_fault, auth=True)
        r("POST", "/_emulator/webhooks", self.ctl_webhooks, auth=True)
        r("POST", "/_emulator/reset", self.ctl_reset, auth=True)

    def _route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))
        self._routes.append((method, pattern, handler, auth))

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = await self._dispatch(scope, await read_body(receive))
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        if response.content_type:
            headers.append((b"content-type", response.content_type.encode()))
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.emulator.restore()  # WAHA restarts the sessions this worker was running
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"session store: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.emulator.shutdown()  # STOPPED for every running session, as WAHA does
                await self.emulator.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: dict[str, Any], body: bytes) -> Response:
        path: str = scope["path"]
        control = path.startswith("/_emulator/")
        if not control and self.emulator.fault == "error500":
            return Response.json({"statusCode": 500, "message": "Internal server error"}, 500)
        if not control and self.emulator.fault == "refuse":
            # An ASGI app cannot refuse TCP connections; answer like a proxy whose upstream is
            # gone (503, connection closed), which a client must treat as "WAHA unreachable".
            return Response(503, b"Service Unavailable", "text/plain", {"Connection": "close"})
        for method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(path)
            if match is None or method != scope["method"]:
                continue
            request = Request(scope, body, match.groupdict())
            if auth and not self._authorized(request):
                return _error(401, "Unauthorized")
            try:
                return await handler(request)
            except EmulatorError as exc:
                return _error(exc.status, exc.message, exc.body)
        return _error(404, f"Cannot {scope['method']} {path}")

    def _authorized(self, request: Request) -> bool:
        expected = self.emulator.config.api_key
        if not expected:
            return True
        presented = request.headers.get("x-api-key") or request.query.get("x-api-key") or ""
        if expected.startswith("sha512:"):
            digest = hashlib.sha512(presented.encode()).hexdigest()
            return hmac.compare_digest(digest, expected.removeprefix("sha512:").lower())
        return hmac.compare_digest(presented.encode(), expected.encode())

    def _session(self, request: Request) -> EmulatedSession:
        return self.emulator.get(request.params["session"])

    # --- server -------------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        return Response.json({"message": "pong"})

    async def health(self, request: Request) -> Response:
        details = {"mediaFiles.space": {"status": "up"}, "sessionsFiles.space": {"status": "up"}}
        return Response.json({"status": "ok", "info": details, "error": {}, "details": details})

    async def version(self, request: Request) -> Response:
        return Response.json(self.emulator.environment())

    # --- sessions -----------------------------------------------------------------------------

    async def list_sessions(self, request: Request) -> Response:
        include_stopped = request.query.get("all", "").lower() in ("true", "1")
        sessions = [s for s in self.emulator.sessions.values() if include_stopped or s.status != "STOPPED"]
        return Response.json([self.emulator.info(s) for s in sessions])

    async def get_session(self, request: Request) -> Response:
        return Response.json(self.emulator.info(self._session(request)))

    async def get_me(self, request: Request) -> Response:
        session = self._session(request)
        self.emulator.require_running(session)  # a session-scoped route: 404 while STOPPED
        return Response.json(session.me)

    async def create_session(self, request: Request) -> Response:
        data = request.json()
        name = data.get("name")
        if name is None:
            name = "session_" + secrets.token_hex(8)
        _validate_name(name)
        start = data.get("start", True)  # OAS/docs default; WAHA 2024.10 treated "absent" as false
        if not isinstance(start, bool):
            raise EmulatorError(400, ["start must be a boolean value"])
        session = self.emulator.create(name, _normalise_config(data.get("config")), start)
        return Response.json(self.emulator.dto(session), 201)

    async def update_session(self, request: Request) -> Response:
        session = self._session(request)
        config = _normalise_config(request.json().get("config"))
        await self.emulator.update(session, config)
        return Response.json(self.emulator.dto(session))

    async def delete_session(self, request: Request) -> Response:
        session = self.emulator.sessions.get(request.params["session"])
        if session is not None:
            await self.emulator.delete(session)
        return Response(200, b"", None)

    def _action(self, action: str) -> Handler:
        async def handler(request: Request) -> Response:
            if action == "stop" and request.params["session"] not in self.emulator.sessions:
                # recent WAHA: stop never checks existence, then answers getSessionInfo()'s null
                # as an empty 201 (src/api/sessions.controller.ts)
                return Response(201, b"", None)
            session = self._session(request)
            operation = self.emulator.start_locked if action == "start" else getattr(self.emulator, action)
            await operation(session)
            return Response.json(self.emulator.dto(session), 201)

        return handler

    async def check_exists(self, request: Request) -> Response:
        phone = request.query.get("phone")
        if not phone:
            raise EmulatorError(400, ["phone should not be empty"])
        session = self.emulator.get(request.query.get("session") or "default")
        return Response.json(await self.emulator.check_exists(session, phone))

    # --- auth ---------------------------------------------------------------------------------

    async def get_qr(self, request: Request) -> Response:
        session = self._session(request)
        fmt = request.query.get("format", "image")
        if fmt not in ("image", "raw"):
            raise EmulatorError(400, ["format must be one of the following values: image, raw"])
        await self.emulator.expect_status(session, ("SCAN_QR_CODE",))
        if session.status != "SCAN_QR_CODE" or session.qr_value is None:
            raise EmulatorError(
                422, f"Can get QR code only in SCAN_QR_CODE status. The current status is '{session.status}'"
            )
        if fmt == "raw":
            return Response.json({"value": session.qr_value})
        accept = request.headers.get("accept", "")
        png = session.png()
        if "application/json" in accept and "image/png" not in accept:
            return Response.json({"mimetype": "image/png", "data": base64.b64encode(png).decode()})
        return Response(200, png, "image/png")

    async def request_code(self, request: Request) -> Response:
        session = self._session(request)
        phone = request.json().get("phoneNumber")
        if not isinstance(phone, str) or not phone.isdigit():
            raise EmulatorError(400, ["phoneNumber must be a string of digits"])
        await self.emulator.expect_status(session, ("SCAN_QR_CODE",))
        return Response.json({"code": self.emulator.request_code(session)}, 201)

    # --- messages -----------------------------------------------------------------------------

    async def send_text(self, request: Request) -> Response:
        data = request.json()
        errors = [f"{field} must be a string" for field in ("chatId", "text") if not isinstance(data.get(field), str)]
        if errors:
            raise EmulatorError(400, errors)
        session = self.emulator.get(str(data.get("session") or "default"))
        message_id = data.get("id") if isinstance(data.get("id"), str) else None
        await self.emulator.expect_status(session, ("WORKING",))
        return Response.json(self.emulator.send_text(session, data["chatId"], data["text"], message_id), 201)

    async def get_chat_message(self, request: Request) -> Response:
        session = self._session(request)
        return Response.json(
            self.emulator.sent_message(session, request.params["chat_id"], request.params["message_id"])
        )

    async def send_image(self, request: Request) -> Response:
        return self._send_media(request, "image")

    async def send_file(self, request: Request) -> Response:
        return self._send_media(request, "file")

    def _send_media(self, request: Request, kind: str) -> Response:
        data = request.json()
        file: dict[str, Any] = data["file"] if isinstance(data.get("file"), dict) else {}
        errors = [] if isinstance(data.get("chatId"), str) else ["chatId must be a string"]
        if not isinstance(file.get("url"), str) or not isinstance(file.get("mimetype"), str):
            errors.append("file must be a RemoteFile {url, mimetype, filename?}")  # BinaryFile is not emulated
        if data.get("caption") is not None and not isinstance(data.get("caption"), str):
            errors.append("caption must be a string")
        if errors:
            raise EmulatorError(400, errors)
        session = self.emulator.get(str(data.get("session") or "default"))
        return Response.json(self.emulator.send_media(session, kind, data["chatId"], file, data.get("caption")), 201)

    # --- control ------------------------------------------------------------------------------

    # Control endpoints need the instance's API key (like WAHA's routes) and never answer a secret:
    # session configs carry the webhook HMAC key and proxy passwords.

    async def ctl_dump(self, request: Request) -> Response:
        return Response.json([_without_secrets(s) for s in self.emulator.dump()])

    async def ctl_events(self, request: Request) -> Response:
        return Response.json({"events": list(self.emulator.events), "deliveries": list(self.emulator.deliveries)})

    async def ctl_scan(self, request: Request) -> Response:
        session, data = self._session(request), request.json(required=False)
        self.emulator.scan(session, data.get("phone"), data.get("pushName"))
        return Response.json(_without_secrets(self.emulator.info(session)))

    async def ctl_fail(self, request: Request) -> Response:
        session = self._session(request)
        self.emulator.fail(session)
        return Response.json(_without_secrets(self.emulator.info(session)))

    async def ctl_disconnect(self, request: Request) -> Response:
        session = self._session(request)
        self.emulator.disconnect(session, request.json(required=False).get("status", "FAILED"))
        return Response.json(_without_secrets(self.emulator.info(session)))

    async def ctl_message(self, request: Request) -> Response:
        session, data = self._session(request), request.json(required=False)
        payload = self.emulator.inbound_message(
            session, data.get("from"), str(data.get("text", "Hello from the emulator"))
        )
        return Response.json(payload)

    async def ctl_ack(self, request: Request) -> Response:
        session, ack = self._session(request), request.json().get("ack")
        if not isinstance(ack, int) or isinstance(ack, bool):
            raise EmulatorError(400, ["ack must be an integer"])
        return Response.json(self.emulator.ack(session, request.params["message_id"], ack))

    async def ctl_flap(self, request: Request) -> Response:
        session, data = self._session(request), request.json(required=False)
        seconds = data.get("seconds", 0.2)
        if not isinstance(seconds, int | float) or seconds < 0:
            raise EmulatorError(400, ["seconds must be a non-negative number"])
        self.emulator.flap(session, float(seconds))
        return Response.json(self.emulator.info(session))

    async def ctl_session_fault(self, request: Request) -> Response:
        session, data = self._session(request), request.json()
        fault, survive = data.get("fault"), data.get("survive_restart", False)
        if fault not in ("zombie", None) or not isinstance(survive, bool):
            raise EmulatorError(400, ["fault must be 'zombie' or null; survive_restart a boolean"])
        self.emulator.set_zombie(session, fault == "zombie", survive)
        return Response.json({"fault": fault, "survive_restart": session.zombie_survives})

    async def ctl_linked_devices(self, request: Request) -> Response:
        phone = request.params["phone"]
        return Response.json({"phone": phone, "devices": self.emulator.linked_devices(phone)})

    async def ctl_fault(self, request: Request) -> Response:
        mode = request.json().get("mode")
        if mode not in FAULT_MODES:
            raise EmulatorError(400, [f"mode must be one of: {', '.join(FAULT_MODES)}"])
        self.emulator.fault = mode
        return Response.json({"mode": mode})

    async def ctl_webhooks(self, request: Request) -> Response:
        data = request.json()
        deliver, delay = data.get("deliver", self.emulator.deliver_webhooks), data.get("delay")
        if not isinstance(deliver, bool):
            raise EmulatorError(400, ["deliver must be a boolean value"])
        if delay is not None and not (
            isinstance(delay, list)
            and len(delay) == 2
            and all(isinstance(v, int | float) and v >= 0 for v in delay)
            and delay[0] <= delay[1]
        ):
            raise EmulatorError(400, ["delay must be [min, max] seconds"])
        self.emulator.deliver_webhooks = deliver
        if delay is not None:
            self.emulator.webhook_delay = (float(delay[0]), float(delay[1]))
        return Response.json({"deliver": deliver, "delay": list(self.emulator.webhook_delay)})

    async def ctl_reset(self, request: Request) -> Response:
        self.emulator.reset()
        return Response.json({"reset": True})


def _without_secrets(info: dict[str, Any]) -> dict[str, Any]:
    """A session as the control endpoints show it: webhook HMAC keys, custom webhook headers and
    proxy passwords removed."""
    config = dict(info.get("config") or {})
    if isinstance(config.get("proxy"), dict):
        config["proxy"] = {k: v for k, v in config["proxy"].items() if k != "password"}
    if isinstance(config.get("webhooks"), list):
        config["webhooks"] = [
            {k: v for k, v in hook.items() if k not in ("hmac", "customHeaders")} if isinstance(hook, dict) else hook
            for hook in config["webhooks"]
        ]
    return {**info, "config": config}


def _validate_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise EmulatorError(400, ["name must contain only letters, digits, '_' and '-'"])
    if len(name) > 54:
        raise EmulatorError(400, ["name must be shorter than or equal to 54 characters"])


def _normalise_config(config: Any) -> dict[str, Any]:
    """Validate a SessionConfig like WAHA's pipe and return what WAHA would echo back.

    Unknown fields are dropped (WAHA's whitelist), and unset webhook sub-objects echo as null.
    """
    if config is None:
        return {"debug": False}
    if not isinstance(config, dict):
        raise EmulatorError(400, ["config must be an object"])
    errors: list[str] = []
    clean = {k: config[k] for k in _CONFIG_KEYS if k in config}
    clean.setdefault("debug", False)
    metadata = clean.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        errors.append("config.metadata must be an object of strings")
    proxy = clean.get("proxy")
    if proxy is not None:
        if not isinstance(proxy, dict) or not isinstance(proxy.get("server"), str):
            errors.append("config.proxy.server must be a string")
        else:
            clean["proxy"] = {k: proxy[k] for k in ("server", "username", "password") if k in proxy}
    hooks = clean.get("webhooks")
    if hooks is not None:
        if not isinstance(hooks, list):
            errors.append("config.webhooks must be an array")
            hooks = []
        clean["webhooks"] = [_normalise_webhook(hook, i, errors) for i, hook in enumerate(hooks)]
    if errors:
        raise EmulatorError(400, errors)
    return clean


def _normalise_webhook(hook: Any, index: int, errors: list[str]) -> dict[str, Any]:
    where = f"config.webhooks.{index}"
    if not isinstance(hook, dict):
        errors.append(f"{where} must be an object")
        return {}
    if not isinstance(hook.get("url"), str) or not _URL_RE.fullmatch(hook["url"]):
        errors.append(f"{where}.url must be a URL address")
    events = hook.get("events")
    if not isinstance(events, list) or not all(isinstance(e, str) and e in _WEBHOOK_EVENTS for e in events):
        errors.append(f"{where}.events must be an array of known event names")
    retries = hook.get("retries")
    if retries is not None:
        if not isinstance(retries, dict) or retries.get("policy", "linear") not in (
            "linear",
            "exponential",
            "constant",
        ):
            errors.append(f"{where}.retries.policy must be one of: linear, exponential, constant")
        elif any(not isinstance(retries.get(k, 0), int | float) for k in ("delaySeconds", "attempts")):
            errors.append(f"{where}.retries.delaySeconds and attempts must be numbers")
    hmac_config = hook.get("hmac")
    if hmac_config is not None and (
        not isinstance(hmac_config, dict) or not isinstance(hmac_config.get("key", ""), str)
    ):
        errors.append(f"{where}.hmac.key must be a string")
    return {
        "url": hook.get("url"),
        "events": events,
        "hmac": hmac_config,
        "retries": retries,
        "customHeaders": hook.get("customHeaders"),
    }

"""Async WAHA HTTP client.

One ``httpx.AsyncClient`` (connection pool) per WAHA base URL and API key, shared through ``WahaClientPool``.
Every call carries an explicit timeout and the ``X-Api-Key`` header. Remote failures become typed
errors that subclass ``app.core.errors`` so services can map them without knowing about httpx:

| WAHA answer                              | exception          | status semantics |
|------------------------------------------|--------------------|------------------|
| connect error, timeout, broken response, 5xx | ``WahaUnavailable`` | 503, retry later |
| 404                                      | ``WahaNotFound``   | 404              |
| 422 (wrong status for QR/send; ``WahaSessionExists`` on create) | ``WahaConflict`` | 409 |
| other 4xx (400 bad body, 401 bad key, ...), | ``WahaRejected`` | 502: WAHA refused *our* request; |
| or a 2xx body we cannot decode           |                    | the end user did nothing wrong   |

Messages name the method, path and WAHA's own message; keys and passwords are scrubbed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
import msgspec

from app.core import context, metrics
from app.core.errors import Conflict, DependencyUnavailable, NotFound, WhagoError
from app.core.tenant_keys import TenantKeys
from app.waha.schemas import (
    DEFAULT_EVENTS,
    Base64File,
    PairingCode,
    ProxyConfig,
    QRCodeValue,
    RetryPolicy,
    ServerVersion,
    SessionDTO,
    SessionInfo,
)
from app.waha.sessions import build_session_config

logger = logging.getLogger("whago.waha")

T = TypeVar("T")

_MAX_MESSAGE = 300


def _waha_outcome(exc: BaseException) -> str:
    if isinstance(exc, DependencyUnavailable):
        return "unavailable"
    if isinstance(exc, NotFound):
        return "not_found"
    return "rejected" if isinstance(exc, WhagoError) else "error"


class WahaError(WhagoError):
    """Base of every WAHA adapter error. ``waha_status`` is WAHA's HTTP status, if it answered."""

    def __init__(self, detail: str, *, waha_status: int | None = None) -> None:
        super().__init__(detail)
        self.waha_status = waha_status


class WahaUnavailable(WahaError, DependencyUnavailable):
    pass


class WahaTimedOut(WahaUnavailable):
    """The request may have reached WAHA (a read or write timeout, not a connect failure): a send
    may have happened. Callers that must not repeat a send treat it as "outcome unknown"."""


class WahaNotFound(WahaError, NotFound):
    pass


class WahaConflict(WahaError, Conflict):
    pass


class WahaSessionExists(WahaConflict):
    """422 "Session '<name>' already exists" on create."""


class WahaRejected(WahaError):
    status_code = 502
    code = "waha_rejected"
    default_detail = "WAHA rejected the request."


class WahaClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        *,
        lifecycle_timeout: float | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # Connect fails fast (a dead instance should not eat the whole budget); reads get it all.
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        # WAHA's lifecycle calls are slow by design (a fixed 3 s wait after each stop, 1 s more
        # after an unpair: src/core/manager.core.ts), so they get their own, longer read timeout.
        slow = max(timeout, lifecycle_timeout if lifecycle_timeout is not None else 20.0)
        self._lifecycle_timeout = httpx.Timeout(slow, connect=min(timeout, 5.0))
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            timeout=self._timeout,
            trust_env=False,  # WAHA sits on an internal address: never route it via an ambient HTTP(S)_PROXY
        )
        self._secrets: set[str] = set()
        self._remember_secrets(api_key)

    def __repr__(self) -> str:
        return f"WahaClient({self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> WahaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- sessions -----------------------------------------------------------------------------

    async def create_session(
        self,
        name: str,
        *,
        start: bool,
        metadata: Mapping[str, str],
        proxy: ProxyConfig | None,
        webhook_url: str,
        hmac_key: str | None,
        events: Iterable[str] = DEFAULT_EVENTS,
        retry_attempts: int = 8,
        retry_delay_seconds: float = 2,
        retry_policy: RetryPolicy = "exponential",
    ) -> SessionDTO:
        """Create the session, or replace the config of an existing one (idempotent provisioning).

        On "already exists" WAHA wants a PUT with the full config; PUT restarts a running session but
        does not start a stopped one, so ``start=True`` then also starts it.
        """
        config = build_session_config(
            metadata=metadata,
            webhook_url=webhook_url,
            hmac_key=hmac_key,
            proxy=proxy,
            events=events,
            retry_attempts=retry_attempts,
            retry_delay_seconds=retry_delay_seconds,
            retry_policy=retry_policy,
        )
        return await self.create_session_with_config(name, config, start=start)

    async def create_session_with_config(self, name: str, config: Mapping[str, Any], *, start: bool) -> SessionDTO:
        """``create_session`` with a config already built by ``build_session_config``."""
        self._remember_config_secrets(config)
        try:
            return await self._call(
                "POST",
                "/api/sessions",
                SessionDTO,
                json={"name": name, "start": start, "config": dict(config)},
                op="lifecycle",
            )
        except WahaSessionExists:
            pass
        session = await self.update_session(name, config)
        if start and session.status == "STOPPED":
            session = await self.start_session(name)
        return session

    async def update_session(self, name: str, config: Mapping[str, Any]) -> SessionDTO:
        """Replace the whole config (WAHA restarts the session if it runs)."""
        self._remember_config_secrets(config)
        return await self._call(
            "PUT", f"/api/sessions/{_seg(name)}", SessionDTO, json={"config": dict(config)}, op="lifecycle"
        )

    def _remember_config_secrets(self, config: Mapping[str, Any]) -> None:
        proxy = config.get("proxy") or {}
        hooks = config.get("webhooks") or []
        self._remember_secrets(proxy.get("password"), *((hook.get("hmac") or {}).get("key") for hook in hooks))

    async def get_session(self, name: str) -> SessionInfo:
        return await self._call("GET", f"/api/sessions/{_seg(name)}", SessionInfo)

    async def list_sessions(self, all: bool = True) -> list[SessionInfo]:
        params = {"all": "true"} if all else None
        return await self._call("GET", "/api/sessions", list[SessionInfo], params=params)

    async def start_session(self, name: str) -> SessionDTO:
        """Start a stopped session. WAHA answers 422 "already started" for a running one (FAILED
        included); that is the state asked for, so it answers the session as it is."""
        try:
            return await self._call("POST", f"/api/sessions/{_seg(name)}/start", SessionDTO, op="lifecycle")
        except WahaConflict as exc:
            if "already started" not in exc.detail:
                raise
        return await self._call("GET", f"/api/sessions/{_seg(name)}", SessionDTO)

    async def stop_session(self, name: str) -> SessionDTO:
        """Stop a session. Recent WAHA answers an unknown session with an empty 201: that is
        ``WahaNotFound`` here, as the other lifecycle calls answer it."""
        path = f"/api/sessions/{_seg(name)}/stop"
        response = await self._request("POST", path, op="lifecycle")
        if not response.content.strip():
            raise WahaNotFound(f"WAHA POST {path}: no such session (empty answer)", waha_status=response.status_code)
        return self._decode(response, SessionDTO, method="POST", path=path)

    async def restart_session(self, name: str) -> SessionDTO:
        return await self._call("POST", f"/api/sessions/{_seg(name)}/restart", SessionDTO, op="lifecycle")

    async def logout_session(self, name: str) -> SessionDTO:
        return await self._call("POST", f"/api/sessions/{_seg(name)}/logout", SessionDTO, op="lifecycle")

    # Short aliases; callers may use either spelling.
    start = start_session
    stop = stop_session
    restart = restart_session
    logout = logout_session

    async def delete_session(self, name: str) -> None:
        """Delete config and auth data. A session that is already gone counts as deleted."""
        try:
            await self._call("DELETE", f"/api/sessions/{_seg(name)}", None, op="lifecycle")
        except WahaNotFound:
            pass

    # --- auth ---------------------------------------------------------------------------------

    async def get_qr_png(self, name: str) -> bytes:
        """The current QR as PNG bytes. 422 (``WahaConflict``) when the session is not in SCAN_QR_CODE."""
        response = await self._request(
            "GET", f"/api/{_seg(name)}/auth/qr", params={"format": "image"}, headers={"Accept": "image/png"}
        )
        if response.headers.get("content-type", "").startswith("application/json"):
            # Some WAHA builds answer JSON (Base64File) whatever the Accept header says.
            file = self._decode(response, Base64File)
            return base64.b64decode(file.data)
        return response.content

    async def get_qr_raw(self, name: str) -> str:
        """The text encoded in the current QR."""
        value: QRCodeValue = await self._call(
            "GET",
            f"/api/{_seg(name)}/auth/qr",
            QRCodeValue,
            params={"format": "raw"},
            headers={"Accept": "application/json"},
        )
        return value.value

    async def request_pairing_code(self, name: str, phone_number: str) -> str:
        """Ask WhatsApp for an 8-character pairing code to type on the phone instead of scanning."""
        digits = "".join(ch for ch in phone_number if ch.isdigit())
        result: PairingCode = await self._call(
            "POST", f"/api/{_seg(name)}/auth/request-code", PairingCode, json={"phoneNumber": digits}
        )
        return result.code

    # --- messages -----------------------------------------------------------------------------

    async def send_text(self, name: str, chat_id: str, text: str, *, message_id: str | None = None) -> dict[str, Any]:
        """Send a text. Returns ``{"id": <message id or None>, "raw": <WAHA's body or None>}``.

        The body's shape depends on the engine (WAMessage ``id``; NOWEB's Baileys ``key.id``; one
        release answered an empty 201), so the id is best-effort. ``message_id`` is WAHA's
        "pre-generated message id" (NOWEB/GOWS) for callers that need correlation.
        """
        body: dict[str, Any] = {"session": name, "chatId": _chat_id(chat_id), "text": text}
        if message_id:
            body["id"] = message_id
        return await self._send("/api/sendText", body, message_id)

    async def send_image(
        self,
        name: str,
        chat_id: str,
        url: str,
        mimetype: str,
        *,
        filename: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """Send an image WAHA downloads from ``url`` (``RemoteFile``). Same answer as ``send_text``."""
        return await self._send("/api/sendImage", _file_body(name, chat_id, url, mimetype, filename, caption), None)

    async def send_file(
        self,
        name: str,
        chat_id: str,
        url: str,
        mimetype: str,
        *,
        filename: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """Send a document WAHA downloads from ``url`` (``RemoteFile``). Same answer as ``send_text``."""
        return await self._send("/api/sendFile", _file_body(name, chat_id, url, mimetype, filename, caption), None)

    async def get_message(self, name: str, chat_id: str, message_id: str) -> dict[str, Any]:
        """One message of a chat (``WAMessage``, with its current ``ack``); 404 when WAHA has none."""
        path = f"/api/{_seg(name)}/chats/{_seg(_chat_id(chat_id))}/messages/{_seg(message_id)}"
        raw: dict[str, Any] = await self._call("GET", path, dict[str, Any], params={"downloadMedia": "false"})
        return raw

    async def check_exists(self, name: str, phone: str, *, timeout: float) -> dict[str, Any]:
        """``GET /api/contacts/check-exists``: ``{numberExists, chatId}``. It asks WhatsApp's
        servers, so it needs a live connection (the liveness probe); ``timeout`` is the probe's own."""
        raw: dict[str, Any] = await self._call(
            "GET",
            "/api/contacts/check-exists",
            dict[str, Any],
            params={"phone": phone, "session": name},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )
        return raw

    async def _send(self, path: str, body: dict[str, Any], message_id: str | None) -> dict[str, Any]:
        response = await self._request("POST", path, json=body)
        raw: Any = None
        if response.content.strip():
            try:
                raw = msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                raw = None
        return {"id": _message_id(raw) or message_id, "raw": raw}

    # --- server -------------------------------------------------------------------------------

    async def server_version(self) -> ServerVersion:
        return await self._call("GET", "/api/server/version", ServerVersion)

    async def ping(self) -> bool:
        """Liveness: True when ``/ping`` answers 200. Never raises."""
        try:
            await self._request("GET", "/ping")
        except WahaError:
            return False
        return True

    # --- plumbing -----------------------------------------------------------------------------

    def _remember_secrets(self, *values: str | None) -> None:
        # Very short values cannot be scrubbed without mangling every message; real keys are long.
        self._secrets.update(v for v in values if v and len(v) >= 6)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:_MAX_MESSAGE]

    async def _call(self, method: str, path: str, type_: type[T] | Any, **kwargs: Any) -> T:
        response = await self._request(method, path, **kwargs)
        return None if type_ is None else self._decode(response, type_, method=method, path=path)  # type: ignore[return-value]

    def _decode(self, response: httpx.Response, type_: Any, *, method: str = "", path: str = "") -> Any:
        try:
            return msgspec.json.decode(response.content, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            where = f"{method or response.request.method} {path or response.request.url.path}"
            raise WahaRejected(
                f"WAHA {where}: unexpected response body ({self._scrub(str(exc))})", waha_status=response.status_code
            ) from None

    async def _request(self, method: str, path: str, *, op: str = "call", **kwargs: Any) -> httpx.Response:
        with metrics.timed(
            metrics.WAHA_SECONDS, metrics.WAHA_REQUESTS, metrics.waha_operation(method, path), _waha_outcome
        ):
            return await self._transmit(method, path, op=op, **kwargs)

    async def _transmit(self, method: str, path: str, *, op: str = "call", **kwargs: Any) -> httpx.Response:
        headers = {
            "X-Api-Key": self._api_key,
            "Accept": "application/json",
            **context.outgoing_headers(),
            **kwargs.pop("headers", {}),
        }
        where = f"{method} {path}"
        timeout = kwargs.pop("timeout", None) or (self._lifecycle_timeout if op == "lifecycle" else self._timeout)
        try:
            try:
                response = await self._http.request(
                    method, self.base_url + path, headers=headers, timeout=timeout, **kwargs
                )
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A pooled keep-alive connection the server had already closed: a read-only call
                # is safe to send once more on a fresh connection.
                if method != "GET":
                    raise
                response = await self._http.request(
                    method, self.base_url + path, headers=headers, timeout=timeout, **kwargs
                )
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise WahaUnavailable(f"WAHA {where}: timed out connecting") from None
        except httpx.TimeoutException:
            raise WahaTimedOut(f"WAHA {where}: timed out") from None
        except httpx.HTTPError as exc:
            # Transport failures only; the exception text carries no headers, but scrub anyway.
            raise WahaUnavailable(f"WAHA {where}: {type(exc).__name__} {self._scrub(str(exc))}".rstrip()) from None
        logger.debug("WAHA %s -> %s", where, response.status_code)
        if response.is_success:
            return response
        raise self._error(response, where)

    def _error(self, response: httpx.Response, where: str) -> WahaError:
        status = response.status_code
        message = _waha_message(response)
        detail = f"WAHA {where}: {status} {self._scrub(message)}".rstrip()
        if status >= 500:
            return WahaUnavailable(detail, waha_status=status)
        if status == 404:
            return WahaNotFound(detail, waha_status=status)
        if status == 422 and "already exists" in message:
            return WahaSessionExists(detail, waha_status=status)
        if status == 422:
            return WahaConflict(detail, waha_status=status)
        return WahaRejected(detail, waha_status=status)


class WahaClientPool:
    """One client (and connection pool) per (WAHA base URL, API key); close it once at shutdown.

    ``for_tenant`` is what services use: it sends the tenant's derived key
    (``app.core.tenant_keys``), so a call can only ever reach the instance that key opens.
    """

    def __init__(
        self,
        api_key: str,
        timeout: float = 10.0,
        lifecycle_timeout: float | None = None,
        *,
        tenant_keys: TenantKeys | None = None,
    ) -> None:
        self._api_key = api_key
        self._timeout = timeout
        self._lifecycle_timeout = lifecycle_timeout
        self._tenant_keys = tenant_keys
        self._clients: dict[tuple[str, str], WahaClient] = {}

    def get(self, base_url: str, api_key: str | None = None) -> WahaClient:
        """A client sending ``api_key`` (the platform key when None: a shared, static WAHA)."""
        url = base_url.rstrip("/")
        secret = self._api_key if api_key is None else api_key
        client = self._clients.get((url, secret))
        if client is None:
            client = self._clients[(url, secret)] = WahaClient(
                url, secret, self._timeout, lifecycle_timeout=self._lifecycle_timeout
            )
        return client

    def for_tenant(self, base_url: str, user_id: UUID | str) -> WahaClient:
        """The client for a tenant's own instance, with that tenant's API key."""
        if self._tenant_keys is None:
            return self.get(base_url)
        return self.get(base_url, self._tenant_keys.api_key(user_id))

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    @classmethod
    def from_settings(cls, settings: Any) -> WahaClientPool:
        return cls(
            settings.waha_api_key,
            settings.waha_timeout_seconds,
            settings.waha_lifecycle_timeout_seconds,
            tenant_keys=TenantKeys(settings),
        )


def _chat_id(chat_id: str) -> str:
    return chat_id if "@" in chat_id else "".join(ch for ch in chat_id if ch.isdigit()) + "@c.us"


def _file_body(
    name: str, chat_id: str, url: str, mimetype: str, filename: str | None, caption: str | None
) -> dict[str, Any]:
    file: dict[str, Any] = {"url": url, "mimetype": mimetype}
    if filename:
        file["filename"] = filename
    body: dict[str, Any] = {"session": name, "chatId": _chat_id(chat_id), "file": file}
    if caption:
        body["caption"] = caption
    return body


def _seg(name: str) -> str:
    """A session name as one path segment (never lets a name reach another route)."""
    return quote(name, safe="")


def _waha_message(response: httpx.Response) -> str:
    """WAHA's (NestJS) error text: ``{"message": str | [str], "error": ..., "statusCode": n}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict):
        message = body.get("message", body.get("error", ""))
        if isinstance(message, list):
            message = "; ".join(map(str, message))
        return str(message)
    return str(body)


def _message_id(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("id"), str):
        return raw["id"]
    # whatsapp-web.js serialises the id as {"_serialized": ...}; NOWEB as Baileys' key.id
    if isinstance(raw.get("id"), dict) and isinstance(raw["id"].get("_serialized"), str):
        return raw["id"]["_serialized"]
    key = raw.get("key")
    if isinstance(key, dict) and isinstance(key.get("id"), str):
        return key["id"]
    return None

"""Emulator state and behaviour: sessions, their status lifecycle, QR rotation and webhooks.

Everything here runs on the serving event loop. Timers (boot, QR rotation) and webhook delivery
are asyncio tasks, so no HTTP handler ever waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import logging
import random
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import segno

from app.waha.emulator.store import SessionStore, StoredSession

logger = logging.getLogger("whago.waha.emulator")

RUNNING = ("STARTING", "SCAN_QR_CODE", "WORKING")
FAULT_MODES = ("none", "error500", "refuse")
# WAHA's defaults when a webhook has no `retries` block (waha.md §4.6).
DEFAULT_RETRY_ATTEMPTS = 15
DEFAULT_RETRY_DELAY_SECONDS = 2.0
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# WAHA's ack codes and names (waha.md §4.4, WAMessageAckBody)
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}


class EmulatorConfig(msgspec.Struct, kw_only=True, frozen=True):
    api_key: str = ""  # "" disables the key check (WAHA_NO_API_KEY); "sha512:<hex>" is accepted too
    boot_delay_seconds: float = 1.0  # STARTING -> SCAN_QR_CODE (or -> WORKING when already linked)
    qr_first_seconds: float = 60.0
    qr_next_seconds: float = 20.0
    qr_max: int = 6  # QR codes shown before the session goes FAILED
    webhook_timeout_seconds: float = 10.0  # per delivery attempt
    worker_id: str = "waha-emulator"
    engine: str = "GOWS"
    version: str = "2026.7.1"
    tier: str = "CORE"
    # Session storage (WAHA's /app/.sessions or PostgreSQL, waha.md §1.5). None = no persistence:
    # a restart forgets every session, like a container without a volume.
    store: SessionStore | None = None
    restart_sessions: bool = True  # WAHA_WORKER_RESTART_SESSIONS
    # Automatic message.ack SERVER -> DEVICE -> READ for every sent message, this far apart; 0
    # disables them (tests drive acks with the control endpoint instead).
    ack_delay_seconds: float = 0.3


def now_ms() -> int:
    return int(time.time() * 1000)


def new_ulid() -> str:
    """Lowercase ULID: 48-bit ms timestamp + 80 random bits, Crockford base32, 26 chars."""
    value = (now_ms() << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def new_message_id() -> str:
    return "3EB0" + secrets.token_hex(9).upper()


def new_qr_value() -> str:
    # Same shape as WhatsApp's link QR: "<ref>,<noise key>,<identity key>,<adv secret>".
    parts = [secrets.token_urlsafe(48)] + [secrets.token_bytes(32).hex() for _ in range(3)]
    return "2@" + ",".join(parts)


def qr_png(value: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(value, error="l", micro=False).save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


def retry_delay(policy: str, delay: float, retry: int) -> float:
    """Wait before retry number ``retry`` (1-based), per WAHA's policies (waha.md §4.6)."""
    if policy == "linear":
        return delay * retry
    if policy == "exponential":
        return delay * 2 ** (retry - 1) + random.uniform(0, 0.2 * delay)  # WAHA adds jitter
    return delay


class EmulatorError(Exception):
    """Raised by state operations; the ASGI layer turns it into WAHA's error body."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class EmulatedSession:
    name: str
    config: dict[str, Any]
    status: str = "STOPPED"
    auth: dict[str, Any] | None = None  # MeInfo while linked; survives stop/start until logout/unlink
    statuses: list[dict[str, Any]] = field(default_factory=list)
    qr_value: str | None = None
    qr_count: int = 0
    pairing_code: str | None = None
    activity_ms: int | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    _png: tuple[str, bytes] | None = field(default=None, repr=False)

    @property
    def me(self) -> dict[str, Any] | None:
        return self.auth if self.status == "WORKING" else None

    def png(self) -> bytes:
        if self.qr_value is None:
            raise EmulatorError(422, "No QR code available")
        if self._png is None or self._png[0] != self.qr_value:
            self._png = (self.qr_value, qr_png(self.qr_value))
        return self._png[1]


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.sessions: dict[str, EmulatedSession] = {}
        self.fault = "none"
        self.deliver_webhooks = True
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)  # every emitted envelope
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=5000)  # every delivery attempt
        self._queues: dict[str, asyncio.Queue[tuple[dict[str, Any], bytes, dict[str, Any]] | None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()  # workers of deleted sessions, cancelled
        self._http: httpx.AsyncClient | None = None
        self._saved: dict[str, bytes] = {}  # last record written per session (skip no-op writes)
        self._ack_tasks: set[asyncio.Task[None]] = set()  # automatic acks of sent messages
        self._restored = False

    # --- lookups and views --------------------------------------------------------------------

    def get(self, name: str) -> EmulatedSession:
        session = self.sessions.get(name)
        if session is None:
            raise EmulatorError(404, "Session not found")
        return session

    def environment(self) -> dict[str, Any]:
        c = self.config
        return {
            "version": c.version,
            "engine": c.engine,
            "tier": c.tier,
            "browser": "",  # no browser for NOWEB/GOWS; the spec types it as a required string
            "platform": "linux/x64",
            "worker": {"id": c.worker_id},
        }

    def dto(self, s: EmulatedSession) -> dict[str, Any]:
        return {"name": s.name, "status": s.status, "config": s.config}

    def info(self, s: EmulatedSession) -> dict[str, Any]:
        return {
            "name": s.name,
            "status": s.status,
            "config": s.config,
            "me": s.me,
            "assignedWorker": self.config.worker_id,
            "presence": {},
            "timestamps": {"activity": s.activity_ms},
            "engine": {"engine": self.config.engine},
        }

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self, name: str, config: dict[str, Any], start: bool) -> EmulatedSession:
        if name in self.sessions:
            raise EmulatorError(422, f"Session '{name}' already exists. Use PUT to update it.")
        session = self.sessions[name] = EmulatedSession(name=name, config=config)
        if start:
            self.start(session)
        self._persist(session)
        return session

    def update(self, s: EmulatedSession, config: dict[str, Any]) -> None:
        running = s.status in RUNNING
        s.config = config
        if running:  # WAHA stops and starts a running session with the new config
            self.stop(s)
            self.start(s)
        self._persist(s)

    def start(self, s: EmulatedSession) -> None:
        if s.status in RUNNING:
            return
        self._cancel_runner(s)
        self._set_status(s, "STARTING")
        s.runner = asyncio.get_running_loop().create_task(self._run(s), name=f"waha-emu-{s.name}")

    def stop(self, s: EmulatedSession) -> None:
        self._cancel_runner(s)
        if s.status != "STOPPED":
            self._set_status(s, "STOPPED")

    def restart(self, s: EmulatedSession) -> None:
        self.stop(s)
        self.start(s)

    def logout(self, s: EmulatedSession) -> None:
        running = s.status in RUNNING
        s.auth = None
        if running:  # a running session comes back fresh, waiting for a new QR
            self.restart(s)
        self._persist(s)

    def delete(self, s: EmulatedSession) -> None:
        self.stop(s)
        s.auth = None
        self.sessions.pop(s.name, None)
        self._unpersist(s.name)
        self._drop_delivery(s.name)

    # --- storage ------------------------------------------------------------------------------

    def restore(self) -> list[str]:
        """Start-up: load the stored sessions and start the ones this worker was running.

        A linked one goes STARTING -> WORKING without a QR, an unlinked one STARTING -> QR; stopped
        ones stay STOPPED (WHATSAPP_RESTART_ALL_SESSIONS is off). Every status change emits
        ``session.status`` to the session's webhooks, as WAHA does. Runs once, on the serving loop.
        Returns the names of the sessions started.
        """
        store = self.config.store
        if store is None or self._restored:
            return []
        self._restored = True
        started = []
        for record in sorted(store.load(self.config.worker_id), key=lambda r: r.name):
            if record.name in self.sessions:
                continue
            s = self.sessions[record.name] = EmulatedSession(name=record.name, config=record.config, auth=record.auth)
            self._saved[s.name] = msgspec.json.encode(record)
            if record.running and self.config.restart_sessions:
                self.start(s)
                started.append(s.name)
        if started:
            logger.info("worker %s restarted %d stored session(s)", self.config.worker_id, len(started))
        return started

    def _persist(self, s: EmulatedSession) -> None:
        store = self.config.store
        if store is None or s.name not in self.sessions:
            return
        # "running" = started and not stopped by a user: FAILED counts (WAHA restarts it too).
        record = StoredSession(name=s.name, config=s.config, running=s.status != "STOPPED", auth=s.auth)
        blob = msgspec.json.encode(record)
        if self._saved.get(s.name) == blob:
            return  # e.g. a QR rotation: nothing WAHA stores changed
        try:
            store.save(self.config.worker_id, record)
        except Exception:  # storage trouble must not take the API down with it
            logger.exception("could not store session %s", s.name)
            return
        self._saved[s.name] = blob

    def _unpersist(self, name: str) -> None:
        self._saved.pop(name, None)
        if self.config.store is not None:
            try:
                self.config.store.remove(self.config.worker_id, name)
            except Exception:
                logger.exception("could not remove stored session %s", name)

    async def _run(self, s: EmulatedSession) -> None:
        c = self.config
        await asyncio.sleep(c.boot_delay_seconds)
        if s.auth is not None:
            self._set_status(s, "WORKING")
            return
        for index in range(max(1, c.qr_max)):
            s.qr_value, s.qr_count, s.pairing_code = new_qr_value(), s.qr_count + 1, None
            self._set_status(s, "SCAN_QR_CODE")  # every rotation re-emits SCAN_QR_CODE
            await asyncio.sleep(c.qr_first_seconds if index == 0 else c.qr_next_seconds)
        s.qr_value = None
        self._set_status(s, "FAILED")

    def _cancel_runner(self, s: EmulatedSession) -> None:
        # Safe without awaiting: the runner only ever resumes from a sleep, never mid-update.
        if s.runner is not None and not s.runner.done():
            s.runner.cancel()
        s.runner = None
        s.qr_value = None
        s.pairing_code = None

    def _set_status(self, s: EmulatedSession, status: str) -> None:
        s.status = status
        s.activity_ms = now_ms()
        self._persist(s)
        s.statuses = [*s.statuses, {"status": status, "timestamp": s.activity_ms}][-3:]
        self.emit(s, "session.status", {"name": s.name, "status": status, "statuses": list(s.statuses), "data": None})

    # --- device-side actions (control endpoints) ----------------------------------------------

    def scan(self, s: EmulatedSession, phone: str | None = None, push_name: str | None = None) -> None:
        """The phone scanned the QR (or typed the pairing code): the session becomes WORKING."""
        if s.status != "SCAN_QR_CODE":
            raise EmulatorError(409, f"Session status is '{s.status}', not 'SCAN_QR_CODE'")
        digits = "".join(ch for ch in phone or "" if ch.isdigit()) or "55119" + "".join(
            random.choices(string.digits, k=8)
        )
        lid = str(random.randint(10**13, 10**14 - 1))
        s.auth = {
            "id": f"{digits}@c.us",
            "pushName": push_name or f"Emulated {digits[-4:]}",
            "lid": f"{lid}@lid",
            "jid": f"{digits}:{random.randint(1, 60)}@s.whatsapp.net",
        }
        self._cancel_runner(s)
        self._set_status(s, "WORKING")

    def fail(self, s: EmulatedSession) -> None:
        """A generic engine failure; the link survives, so a restart reconnects without a QR."""
        self._cancel_runner(s)
        self._set_status(s, "FAILED")

    def disconnect(self, s: EmulatedSession, status: str = "FAILED") -> None:
        """The device was unlinked from the phone: auth is gone, the session needs a new QR."""
        if status not in ("FAILED", "STOPPED"):
            raise EmulatorError(400, "status must be FAILED or STOPPED")
        self._cancel_runner(s)
        s.auth = None
        self._set_status(s, status)

    def inbound_message(self, s: EmulatedSession, sender: str | None, text: str) -> dict[str, Any]:
        me = self._require_working(s)
        chat = _chat_id(sender or "5521" + "".join(random.choices(string.digits, k=9)))
        payload = self._wa_message(from_=chat, to=me["id"], chat=chat, text=text, from_me=False)
        self.emit(s, "message", payload)
        self.emit(s, "message.any", payload)
        return payload

    def send_text(self, s: EmulatedSession, chat_id: str, text: str, message_id: str | None) -> dict[str, Any]:
        me = self._require_working(s)
        chat = _chat_id(chat_id)
        payload = self._wa_message(from_=me["id"], to=chat, chat=chat, text=text, from_me=True, message_id=message_id)
        payload["source"] = "api"
        s.sent.append(payload)
        self.emit(s, "message.any", payload)
        self.schedule_acks(s, payload)
        return payload

    def request_code(self, s: EmulatedSession) -> str:
        if s.status != "SCAN_QR_CODE":
            raise EmulatorError(
                422, f"Session status is not as expected. Status: '{s.status}', expected: 'SCAN_QR_CODE'"
            )
        alphabet = "ABCDEFGHJKLMNPQRSTVWXYZ0123456789"
        code = "".join(secrets.choice(alphabet) for _ in range(8))
        s.pairing_code = f"{code[:4]}-{code[4:]}"
        return s.pairing_code

    def _require_working(self, s: EmulatedSession) -> dict[str, Any]:
        if s.status != "WORKING" or s.auth is None:
            raise EmulatorError(
                422, f"Session status is not as expected. Try again later or restart the session. Status: '{s.status}'"
            )
        s.activity_ms = now_ms()
        return s.auth

    def _wa_message(
        self, *, from_: str, to: str, chat: str, text: str, from_me: bool, message_id: str | None = None
    ) -> dict[str, Any]:
        raw_id = message_id or new_message_id()
        return {
            "id": f"{str(from_me).lower()}_{chat}_{raw_id}",
            "timestamp": int(time.time()),
            "from": from_,
            "fromMe": from_me,
            "to": to,
            "body": text,
            "hasMedia": False,
            "ack": 1,
            "ackName": "SERVER",
            "vCards": [],
            "_data": {"id": {"fromMe": from_me, "remote": chat, "id": raw_id}, "type": "chat"},
        }

    # --- outbound media and delivery acks (message.ack) -----------------------------------------

    def send_media(
        self, s: EmulatedSession, kind: str, chat_id: str, file: dict[str, Any], caption: str | None
    ) -> dict[str, Any]:
        """sendImage / sendFile with a ``RemoteFile``: WAHA downloads the URL; we only echo it."""
        me = self._require_working(s)
        chat = _chat_id(chat_id)
        payload = self._wa_message(from_=me["id"], to=chat, chat=chat, text=caption or "", from_me=True)
        payload["source"] = "api"
        payload["hasMedia"] = True
        payload["media"] = {
            "url": file["url"],
            "mimetype": file["mimetype"],
            "filename": file.get("filename"),
            "error": None,
        }
        payload["_data"]["type"] = "image" if kind == "image" else "document"
        s.sent.append(payload)
        self.emit(s, "message.any", payload)
        self.schedule_acks(s, payload)
        return payload

    def ack(self, s: EmulatedSession, message_id: str, ack: int) -> dict[str, Any]:
        """Emit ``message.ack`` for a message this session sent (``WAMessageAckBody``); any ack,
        any order, any number of times. ``message_id`` is WAHA's id or WhatsApp's raw id."""
        if ack not in ACK_NAMES:
            raise EmulatorError(400, [f"ack must be one of {sorted(ACK_NAMES)}"])
        sent = next((m for m in s.sent if message_id in (m["id"], m["_data"]["id"]["id"])), None)
        if sent is None:
            raise EmulatorError(404, "Message not found")
        sent["ack"], sent["ackName"] = ack, ACK_NAMES[ack]  # what GET .../messages/{id} answers from now on
        payload = {
            "id": sent["id"],
            "from": sent["from"],
            "to": sent["to"],
            "participant": None,  # groups only
            "fromMe": True,
            "ack": ack,
            "ackName": ACK_NAMES[ack],
        }
        return self.emit(s, "message.ack", payload)

    def sent_message(self, s: EmulatedSession, chat_id: str, message_id: str) -> dict[str, Any]:
        """``GET /api/{session}/chats/{chatId}/messages/{messageId}`` for messages this session sent."""
        chat = _chat_id(chat_id)
        for sent in s.sent:
            if sent["to"] == chat and message_id in (sent["id"], sent["_data"]["id"]["id"]):
                return sent
        raise EmulatorError(404, "Message not found")

    def schedule_acks(self, s: EmulatedSession, sent: dict[str, Any]) -> None:
        """SERVER -> DEVICE -> READ, ``ack_delay_seconds`` apart (nothing when it is 0)."""
        if self.config.ack_delay_seconds <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._auto_acks(s, sent["id"]), name=f"waha-emu-acks-{s.name}")
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _auto_acks(self, s: EmulatedSession, message_id: str) -> None:
        for ack in (1, 2, 3):
            await asyncio.sleep(self.config.ack_delay_seconds)
            if self.sessions.get(s.name) is not s or s.status != "WORKING":
                return  # deleted, stopped or unlinked: the phone never sees the rest
            self.ack(s, message_id, ack)

    def _cancel_acks(self) -> list[asyncio.Task[None]]:
        tasks = list(self._ack_tasks)
        for task in tasks:
            task.cancel()
        self._ack_tasks.clear()
        return tasks

    # --- webhooks -----------------------------------------------------------------------------

    def emit(self, s: EmulatedSession, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "id": "evt_" + new_ulid(),
            "timestamp": now_ms(),
            "event": event,
            "session": s.name,
        }
        if s.config.get("metadata") is not None:
            envelope["metadata"] = s.config["metadata"]
        envelope.update(me=s.me, payload=payload, engine=self.config.engine, environment=self.environment())
        self.events.append(envelope)
        if not self.deliver_webhooks:
            return envelope
        body = msgspec.json.encode(envelope)
        for hook in s.config.get("webhooks") or []:
            events = hook.get("events") or []
            if event in events or "*" in events:
                self._queue(s.name).put_nowait((envelope, body, hook))
        return envelope

    def _queue(self, name: str) -> asyncio.Queue[tuple[dict[str, Any], bytes, dict[str, Any]] | None]:
        # One queue and worker per session keeps that session's events in emission order.
        if name not in self._queues:
            self._queues[name] = asyncio.Queue()
            self._workers[name] = asyncio.get_running_loop().create_task(
                self._deliver_loop(name, self._queues[name]), name=f"waha-emu-hooks-{name}"
            )
        return self._queues[name]

    def _drop_delivery(self, name: str) -> None:
        # A deleted session sends nothing more (pending events and retries included); without this
        # its queue and worker task would live as long as the process. An attempt already on the
        # wire is let finish (cancelling it would leave the receiver a truncated request).
        queue = self._queues.pop(name, None)
        task = self._workers.pop(name, None)
        if queue is None or task is None or task.done():
            return
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)  # the worker's signal to end
        # held until it has really ended, so a shutdown right after can still await it
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _deliver_loop(
        self, name: str, queue: asyncio.Queue[tuple[dict[str, Any], bytes, dict[str, Any]] | None]
    ) -> None:
        def alive() -> bool:
            return self._queues.get(name) is queue

        while (item := await queue.get()) is not None:
            envelope, body, hook = item
            try:
                await self._deliver(envelope, body, hook, alive)
            except Exception:  # never let one bad webhook kill the session's delivery worker
                logger.exception("webhook delivery crashed")

    async def _deliver(
        self, envelope: dict[str, Any], body: bytes, hook: dict[str, Any], alive: Callable[[], bool]
    ) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        retries = hook.get("retries") or {}
        attempts = max(1, int(retries.get("attempts") or DEFAULT_RETRY_ATTEMPTS))
        delay_setting = retries.get("delaySeconds")
        delay = float(delay_setting if delay_setting is not None else DEFAULT_RETRY_DELAY_SECONDS)
        policy = retries.get("policy") or "constant"
        # Request id and timestamp are fixed per delivery, so retries carry the same values.
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"WAHA/{self.config.version}",
            "X-Webhook-Request-Id": new_ulid(),
            "X-Webhook-Timestamp": str(now_ms()),
        }
        key = (hook.get("hmac") or {}).get("key")
        if key:
            headers["X-Webhook-Hmac"] = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        for item in hook.get("customHeaders") or []:
            headers[item["name"]] = item["value"]
        timeout = httpx.Timeout(self.config.webhook_timeout_seconds)
        for attempt in range(1, attempts + 1):
            record = {
                "event_id": envelope["id"],
                "event": envelope["event"],
                "session": envelope["session"],
                "url": hook["url"],
                "attempt": attempt,
            }
            try:
                response = await self._http.post(hook["url"], content=body, headers=headers, timeout=timeout)
                record["status"] = response.status_code
                ok = response.is_success
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
                ok = False
            self.deliveries.append(record)
            if ok:
                return
            if attempt < attempts:
                await asyncio.sleep(retry_delay(policy, delay, attempt))
                if not alive():
                    return  # the session was deleted meanwhile: no more retries
        logger.warning(
            "webhook %s for session %s gave up after %d attempts", envelope["event"], envelope["session"], attempts
        )

    # --- housekeeping -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything, stored sessions included (the control endpoint)."""
        self._forget()
        if self.config.store is not None:
            self.config.store.clear(self.config.worker_id)

    def _forget(self) -> None:
        """Drop in-memory state only; the store keeps what WAHA's storage would (shutdown)."""
        for s in self.sessions.values():
            self._cancel_runner(s)
        self._cancel_acks()
        for task in self._workers.values():
            task.cancel()
        self.sessions.clear()
        self._saved.clear()
        self._queues.clear()
        self._workers.clear()
        self.events.clear()
        self.deliveries.clear()
        self.fault = "none"
        self.deliver_webhooks = True

    async def aclose(self) -> None:
        tasks = (
            [s.runner for s in self.sessions.values() if s.runner]
            + list(self._workers.values())
            + list(self._ending)
            + self._cancel_acks()
        )
        self._forget()  # a shutdown is not a wipe: stored sessions come back on the next start
        self._restored = False
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def dump(self) -> list[dict[str, Any]]:
        return [
            {
                **self.info(s),
                "authenticated": s.auth is not None,
                "qr_value": s.qr_value,
                "qr_count": s.qr_count,
                "pairing_code": s.pairing_code,
                "statuses": s.statuses,
                "sent": s.sent,
            }
            for s in self.sessions.values()
        ]


def _chat_id(value: str) -> str:
    return value if "@" in value else "".join(ch for ch in value if ch.isdigit()) + "@c.us"

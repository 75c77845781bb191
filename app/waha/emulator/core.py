"""Emulator state and behaviour: sessions, their status lifecycle, QR rotation and webhooks.

Everything here runs on the serving event loop. Timers (boot, QR rotation) and webhook delivery
are asyncio tasks, so no HTTP handler ever waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import io
import logging
import random
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import segno

from app.waha.emulator.store import SessionStore, StoredSession

logger = logging.getLogger("whago.waha.emulator")

# "Running" as WAHA defines it: the session object exists, whatever its status, FAILED included
# (src/core/manager.core.ts `isRunning` = `!!session`). Only STOPPED is not running.
RUNNING = ("STARTING", "SCAN_QR_CODE", "WORKING", "FAILED")
FAULT_MODES = ("none", "error500", "refuse")
# WAHA's defaults when a webhook has no `retries` block (waha.md §4.6). `attempts` counts
# retries, not tries: a delivery is tried at most 1 + attempts times.
DEFAULT_RETRY_ATTEMPTS = 15
DEFAULT_RETRY_DELAY_SECONDS = 2.0
# WAHA's own waits (src/core/manager.core.ts SESSION_STOP_TIMEOUT = 3000 after a stop, a 1 s sleep
# after unpair; src/core/abc/manager.abc.ts WAIT_STATUS_TIMEOUT = 5000), as `realistic` applies them.
REALISTIC_TIMINGS = {"stop_wait_seconds": 3.0, "unpair_wait_seconds": 1.0, "status_wait_seconds": 5.0}
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
    # How long a session-scoped call (QR, pairing code, send) on a running session waits for the
    # status it needs before answering 422 (WAHA: 5 s).
    status_wait_seconds: float = 5.0
    # Latencies of WAHA's lifecycle calls: 0 by default so tests stay fast; REALISTIC_TIMINGS
    # (the `realistic` flag of `whago emulator`) makes stop/restart/PUT take 3 s, logout 4 s.
    stop_wait_seconds: float = 0.0
    unpair_wait_seconds: float = 0.0
    # On a graceful shutdown: how long the STOPPED webhooks get to go out before the loop ends.
    shutdown_grace_seconds: float = 2.0
    # `whago emulator --zombie`: every session turns into a zombie the first time it is WORKING
    # (with zombie_survives, restarts keep it)
    zombie: bool = False
    zombie_survives: bool = False
    # how long a zombie session's check-exists hangs before WAHA gives up with a 500
    zombie_hang_seconds: float = 30.0


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
    """Wait before retry number ``retry`` (1-based), per WAHA's policies (waha.md §4.6, issue 12):
    constant ``delay``; linear ``delay * n``; exponential ``2^(n-1) * delay`` plus a jitter of up to
    20 % of ``delay`` (WAHA's documented example for 2 s: 2, 4.1, 8.4, 16.3)."""
    if policy == "linear":
        return delay * retry
    if policy == "exponential":
        return delay * 2 ** (retry - 1) + random.uniform(0, 0.2 * delay)
    return delay


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds to wait; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def not_running_text(name: str) -> str:
    # WAHA's getSession() NotFoundException text, verbatim (src/core/manager.core.ts; waha.md §4.8)
    return (
        f"We didn't find a session with name '{name}'.\n"
        f"Please start it first by using POST /api/sessions/{name}/start request"
    )


class EmulatorError(Exception):
    """Raised by state operations; the ASGI layer turns it into WAHA's error body."""

    def __init__(self, status: int, message: str | list[str], body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body  # a body that is not NestJS's {message, error, statusCode} (WAHA's 422)


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
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # WAHA's withLock(name)
    keeps_me: bool = False  # GOWS: `me` stays while a linked session reconnects (not WORKING)
    # The "zombie" fault (WHAGO's liveness): WORKING, but the WhatsApp connection is dead, so no
    # message/ack event flows and check-exists hangs. A restart clears it unless it survives them.
    zombie: bool = False
    zombie_survives: bool = False
    _png: tuple[str, bytes] | None = field(default=None, repr=False)

    @property
    def me(self) -> dict[str, Any] | None:
        if self.status == "WORKING" or (self.keeps_me and self.status in ("STARTING", "FAILED")):
            return self.auth
        return None

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
        self._workers: dict[str, set[asyncio.Task[None]]] = {}  # deliveries under way, per session
        self._ending: set[asyncio.Task[None]] = set()  # deliveries of deleted sessions, finishing
        # bumped when a session is deleted: its deliveries still under way stop retrying
        self._generation: dict[str, int] = {}
        self._http: httpx.AsyncClient | None = None
        self._saved: dict[str, bytes] = {}  # last record written per session (skip no-op writes)
        self._ack_tasks: set[asyncio.Task[None]] = set()  # automatic acks of sent messages
        self._restored = False
        self._changed = asyncio.Event()  # set (and replaced) on every status change
        self._shutting_down = False
        # WhatsApp's side: the devices each phone number shows under "Linked devices", as
        # {"session", "worker", "linked_at"}. Only a scan adds one; only an unpair of a connected
        # session (or the phone itself) removes one; a local logout or a lost storage does not.
        self.phones: dict[str, list[dict[str, Any]]] = {}
        # A delivery fault: every delivery first waits a random time in [min, max] seconds, so
        # events overtake each other (real networks and WAHA's independent sends do this).
        self.webhook_delay: tuple[float, float] = (0.0, 0.0)
        self._zombified: set[str] = set()  # sessions the --zombie flag already turned
        self.checks: deque[str] = deque(maxlen=20000)  # session of every check-exists call, in order

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

    # The HTTP lifecycle calls follow WAHA's controller (src/api/sessions.controller.ts), each under
    # the session's lock: PUT = stop (its STOPPED still goes out through the old config, which is
    # bound to the running session) -> new config -> start if it was running; logout = unpair (only
    # while running) -> stop -> forget auth -> start if it was running; delete = unpair -> stop ->
    # forget. A stop of a running session then waits SESSION_STOP_TIMEOUT (stop_wait_seconds).

    async def update(self, s: EmulatedSession, config: dict[str, Any]) -> None:
        async with s.lock:
            running = s.status in RUNNING
            await self._stop(s)
            s.config = config
            if running:
                self.start(s)
            self._persist(s)

    def start(self, s: EmulatedSession) -> None:
        if s.status in RUNNING:  # FAILED included: /start does not revive it (restart does)
            raise EmulatorError(422, f"Session '{s.name}' is already started.")
        self._cancel_runner(s)
        s.keeps_me = False
        self._set_status(s, "STARTING")
        s.runner = asyncio.get_running_loop().create_task(self._run(s), name=f"waha-emu-{s.name}")

    async def start_locked(self, s: EmulatedSession) -> None:
        async with s.lock:
            self.start(s)

    async def stop(self, s: EmulatedSession) -> None:
        async with s.lock:
            await self._stop(s)

    async def restart(self, s: EmulatedSession) -> None:
        async with s.lock:
            await self._stop(s)
            self.start(s)

    async def logout(self, s: EmulatedSession) -> None:
        async with s.lock:
            running = s.status in RUNNING
            await self._unpair(s)
            await self._stop(s)
            s.auth = None
            if running:  # a running session comes back fresh, waiting for a new QR
                self.start(s)
            self._persist(s)

    async def delete(self, s: EmulatedSession) -> None:
        async with s.lock:
            await self._unpair(s)
            await self._stop(s)
            s.auth = None
            self.sessions.pop(s.name, None)
            self._unpersist(s.name)
            self._drop_delivery(s.name)

    async def _stop(self, s: EmulatedSession) -> None:
        if not s.zombie_survives:
            s.zombie = False  # a fresh connection on the next start
        if s.status not in RUNNING:
            return  # WAHA: "Session is not running." - answers at once
        self._cancel_runner(s)
        self._set_status(s, "STOPPED")
        await asyncio.sleep(self.config.stop_wait_seconds)

    async def _unpair(self, s: EmulatedSession) -> None:
        """WAHA's unpair: returns at once unless the session runs; only a session connected to
        WhatsApp (WORKING) can actually remove its device from the phone."""
        if s.status not in RUNNING:
            return
        if s.status == "WORKING" and s.auth is not None:
            self._unlink_on_phone(s)
        await asyncio.sleep(self.config.unpair_wait_seconds)

    def _unlink_on_phone(self, s: EmulatedSession) -> None:
        phone = _digits(s.auth["id"]) if s.auth else ""
        devices = [d for d in self.phones.get(phone, []) if d["session"] != s.name]
        if devices:
            self.phones[phone] = devices
        else:
            self.phones.pop(phone, None)

    def linked_devices(self, phone: str) -> list[dict[str, Any]]:
        return list(self.phones.get(_digits(phone), []))

    async def expect_status(self, s: EmulatedSession, expected: tuple[str, ...]) -> None:
        """WAHA's session pipes: 404 unless the session runs; then wait up to status_wait_seconds
        for one of ``expected``, else 422 with WAHA's body (src/core/abc/manager.abc.ts)."""
        if s.status not in RUNNING:
            raise EmulatorError(404, not_running_text(s.name))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.status_wait_seconds
        while s.status not in expected:
            if s.status not in RUNNING:
                raise EmulatorError(404, not_running_text(s.name))
            remaining = deadline - loop.time()
            if remaining <= 0:
                error = "Session status is not as expected. Try again later or restart the session"
                body = {"error": error, "session": s.name, "status": s.status, "expected": list(expected)}
                raise EmulatorError(422, error, body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def require_running(self, s: EmulatedSession) -> None:
        if s.status not in RUNNING:
            raise EmulatorError(404, not_running_text(s.name))

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
            s.zombie = s.zombie_survives = record.zombie
            self._saved[s.name] = msgspec.json.encode(record)
            if record.running and self.config.restart_sessions:
                self.start(s)  # STARTING -> ... webhooks go out, as WAHA's do on boot
                started.append(s.name)
        if started:
            logger.info("worker %s restarted %d stored session(s)", self.config.worker_id, len(started))
        return started

    def _persist(self, s: EmulatedSession) -> None:
        store = self.config.store
        if store is None or s.name not in self.sessions or self._shutting_down:
            return  # a shutdown's STOPPED is not a user's stop: the store keeps "running"
        # "running" = started and not stopped by a user: FAILED counts (WAHA restarts it too).
        record = StoredSession(
            name=s.name, config=s.config, running=s.status != "STOPPED", auth=s.auth, zombie=s.zombie_survives
        )
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
        if status == "WORKING" and self.config.zombie and s.name not in self._zombified:
            self._zombified.add(s.name)
            s.zombie, s.zombie_survives = True, self.config.zombie_survives
        s.status = status
        s.activity_ms = now_ms()
        self._changed.set()
        self._changed = asyncio.Event()
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
        self.phones.setdefault(digits, []).append(
            {"session": s.name, "worker": self.config.worker_id, "linked_at": now_ms()}
        )
        self._set_status(s, "WORKING")

    def flap(self, s: EmulatedSession, seconds: float) -> None:
        """GOWS on a keep-alive timeout: WORKING -> STARTING -> WORKING, keeping ``me`` meanwhile."""
        if s.status != "WORKING":
            raise EmulatorError(409, f"Session status is '{s.status}', not 'WORKING'")
        self._cancel_runner(s)
        s.keeps_me = True
        self._set_status(s, "STARTING")
        s.runner = asyncio.get_running_loop().create_task(self._reconnect(s, seconds), name=f"waha-emu-{s.name}")

    async def _reconnect(self, s: EmulatedSession, seconds: float) -> None:
        await asyncio.sleep(seconds)
        s.keeps_me = False
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
        if s.auth is not None:
            self._unlink_on_phone(s)
        s.auth = None
        self._set_status(s, status)

    def set_zombie(self, s: EmulatedSession, on: bool, survive_restart: bool = False) -> None:
        """The liveness fault: the session keeps saying WORKING while nothing reaches WhatsApp."""
        if on and s.status != "WORKING":
            raise EmulatorError(409, f"Session status is '{s.status}', not 'WORKING'")
        s.zombie, s.zombie_survives = on, on and survive_restart
        self._saved.pop(s.name, None)
        self._persist(s)

    async def check_exists(self, s: EmulatedSession, phone: str) -> dict[str, Any]:
        """GET /api/contacts/check-exists: a question to WhatsApp's servers, so it needs a live
        connection. A zombie's call hangs (``zombie_hang_seconds``, then WAHA's 500)."""
        self.checks.append(s.name)
        await self.expect_status(s, ("WORKING",))
        if s.zombie:
            await asyncio.sleep(self.config.zombie_hang_seconds)
            raise EmulatorError(500, "Timed Out")
        digits = _digits(phone)
        return {"numberExists": bool(digits), "chatId": f"{digits}@c.us" if digits else None}

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
        if s.zombie and event != "session.status":
            return envelope  # a dead connection: nothing from WhatsApp reaches WAHA
        self.events.append(envelope)
        if not self.deliver_webhooks:
            return envelope
        body = msgspec.json.encode(envelope)
        for hook in s.config.get("webhooks") or []:
            events = hook.get("events") or []
            if event in events or "*" in events:
                self._send(s.name, envelope, body, hook)
        return envelope

    def _send(self, name: str, envelope: dict[str, Any], body: bytes, hook: dict[str, Any]) -> None:
        # WAHA hands every event to its sender on its own (WebhookConductor: setImmediate ->
        # sender.send per event), so each delivery, retries included, is independent: events of
        # one session overtake each other and a failing one holds back nothing.
        task = asyncio.get_running_loop().create_task(self._deliver(envelope, body, hook), name=f"waha-emu-hook-{name}")
        tasks = self._workers.setdefault(name, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _drop_delivery(self, name: str) -> None:
        # A deleted session sends nothing more: its deliveries stop retrying. An attempt already on
        # the wire is let finish (cancelling it would leave the receiver a truncated request).
        self._generation[name] = self._generation.get(name, 0) + 1
        for task in self._workers.pop(name, set()):
            # held until it has really ended, so a shutdown right after can still await it
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _deliver(self, envelope: dict[str, Any], body: bytes, hook: dict[str, Any]) -> None:
        try:
            await self._deliver_with_retries(envelope, body, hook)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad webhook config must not surface as an unhandled task error
            logger.exception("webhook delivery crashed")

    async def _deliver_with_retries(self, envelope: dict[str, Any], body: bytes, hook: dict[str, Any]) -> None:
        generation = self._generation.get(envelope["session"], 0)
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        low, high = self.webhook_delay
        if high > 0:
            await asyncio.sleep(random.uniform(low, high))
        retries = hook.get("retries") or {}
        attempts = retries.get("attempts")
        retries_left = max(0, int(attempts if attempts is not None else DEFAULT_RETRY_ATTEMPTS))
        delay_setting = retries.get("delaySeconds")
        delay = float(delay_setting if delay_setting is not None else DEFAULT_RETRY_DELAY_SECONDS)
        policy = retries.get("policy") or "constant"
        # One request id per send, reused by its retries; the timestamp is the event's own time.
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"WAHA/{self.config.version}",
            "X-Webhook-Request-Id": new_ulid(),
            "X-Webhook-Timestamp": str(envelope["timestamp"]),
        }
        key = (hook.get("hmac") or {}).get("key")
        if key:
            headers["X-Webhook-Hmac"] = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        for item in hook.get("customHeaders") or []:
            headers[item["name"]] = item["value"]
        timeout = httpx.Timeout(self.config.webhook_timeout_seconds)
        tries = 1 + retries_left
        for attempt in range(1, tries + 1):
            record: dict[str, Any] = {
                "event_id": envelope["id"],
                "event": envelope["event"],
                "session": envelope["session"],
                "url": hook["url"],
                "attempt": attempt,
                "at": time.time(),
            }
            wait_hint = None
            try:
                response = await self._http.post(hook["url"], content=body, headers=headers, timeout=timeout)
                record["status"] = response.status_code
                ok = response.is_success
                wait_hint = retry_after(response.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
                ok = False
            self.deliveries.append(record)
            if ok:
                return
            if attempt < tries:
                await asyncio.sleep(wait_hint if wait_hint is not None else retry_delay(policy, delay, attempt))
                if self._generation.get(envelope["session"], 0) != generation:
                    return  # the session was deleted meanwhile: no more retries
        logger.warning(
            "webhook %s for session %s gave up after %d tries", envelope["event"], envelope["session"], tries
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
        for tasks in self._workers.values():
            for task in tasks:
                task.cancel()
        self.sessions.clear()
        self._saved.clear()
        self._workers.clear()
        self.events.clear()
        self.deliveries.clear()
        self.phones.clear()
        self.checks.clear()
        self._zombified.clear()
        self.fault = "none"
        self.deliver_webhooks = True
        self.webhook_delay = (0.0, 0.0)

    async def shutdown(self) -> None:
        """WAHA's graceful shutdown (beforeApplicationShutdown): every running session is stopped,
        a STOPPED webhook each, while the storage keeps them as running so that the next boot of
        this worker restarts them. The STOPPED deliveries get ``shutdown_grace_seconds``."""
        self._shutting_down = True
        try:
            for s in list(self.sessions.values()):
                if s.status in RUNNING:
                    self._cancel_runner(s)
                    self._set_status(s, "STOPPED")
        finally:
            self._shutting_down = False
        pending = [task for tasks in self._workers.values() for task in tasks]
        if pending:
            await asyncio.wait(pending, timeout=self.config.shutdown_grace_seconds)

    async def aclose(self) -> None:
        tasks = [s.runner for s in self.sessions.values() if s.runner] + [
            task for tasks in self._workers.values() for task in tasks
        ]
        tasks += list(self._ending) + self._cancel_acks()
        self._forget()  # a shutdown is not a wipe: stored sessions come back on the next start
        self._restored = False
        self._changed = asyncio.Event()  # the next serve may run on another event loop
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
                "linked_on_phone": s.auth is not None
                and any(d["session"] == s.name for d in self.linked_devices(s.auth["id"])),
            }
            for s in self.sessions.values()
        ]


def _digits(value: str) -> str:
    return "".join(ch for ch in value.split("@", 1)[0].split(":", 1)[0] if ch.isdigit())


def _chat_id(value: str) -> str:
    return value if "@" in value else "".join(ch for ch in value if ch.isdigit()) + "@c.us"

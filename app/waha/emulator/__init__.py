"""A WAHA emulator: WAHA's HTTP API (the part WHAGO uses) plus a control surface for tests.

Public API::

    from app.waha.emulator import EmulatorConfig, create_emulator_app, serve_emulator

    app = create_emulator_app(EmulatorConfig(api_key="k", boot_delay_seconds=0.05, qr_first_seconds=0.5))
    app.state.emulator            # the live Emulator (same object as app.emulator)
    app.state.emulator.sessions   # name -> EmulatedSession (status, auth, qr_value, config, sent, ...)
    app.state.emulator.events     # every emitted webhook envelope (deque, newest last)
    app.state.emulator.deliveries # every webhook delivery attempt {event_id, url, attempt, status|error}
    app.state.emulator.fault = "error500"; app.state.emulator.deliver_webhooks = False

Flags (``fault``, ``deliver_webhooks``) may be flipped from any thread. Anything that starts
timers (scan, fail, start, ...) must run on the serving loop: use the HTTP control endpoints.

WAHA API (``X-Api-Key`` header or ``?x-api-key=``; 401 otherwise; ``/ping`` is open):
``GET /ping``, ``GET /health``, ``GET /api/server/version``, ``GET|POST /api/sessions``
(``?all=true`` includes STOPPED), ``GET|PUT|DELETE /api/sessions/{name}``,
``POST /api/sessions/{name}/start|stop|restart|logout`` (201), ``GET /api/sessions/{name}/me``,
``GET /api/{name}/auth/qr?format=image|raw``, ``POST /api/{name}/auth/request-code``,
``POST /api/sendText``, ``POST /api/sendImage|sendFile`` (``RemoteFile`` by URL, never fetched),
``GET /api/{name}/chats/{chatId}/messages/{messageId}`` (sent messages, with their latest ack).
Errors use WAHA's NestJS body ``{message, error, statusCode}``, except the wrong-status 422 (below).

Sent messages get ``message.ack`` webhooks SERVER -> DEVICE -> READ, ``ack_delay_seconds`` apart
(``--ack-delay-ms``; 0 disables them, for tests that drive acks by hand).

Faithful to WAHA's source (``devlikeapro/waha``: ``src/api/sessions.controller.ts``,
``src/core/manager.core.ts``, ``src/core/abc/manager.abc.ts``,
``src/core/integrations/webhooks/WebhookConductor.ts``; waha.md §3.1, §4.6, §4.8):

- "Running" is WAHA's ``isRunning`` (a session object exists): STARTING, SCAN_QR_CODE, WORKING and
  FAILED. ``/start`` of a running session (FAILED too) is 422 "Session '<name>' is already
  started."; ``/stop`` of an unknown session is an empty 201.
- Session-scoped routes (QR, pairing code, sendText, ``/me``) on a session that is not running
  answer 404 "We didn't find a session with name '<name>'.\nPlease start it first by using POST
  /api/sessions/<name>/start request". On a running one they wait up to ``status_wait_seconds``
  (WAHA: 5 s) for the status they need, then 422 ``{error, session, status, expected}``.
- Lifecycle calls run under a per-session lock: PUT = stop (its STOPPED goes out through the *old*
  webhooks, bound at start) -> new config -> start if it was running (FAILED included); logout =
  unpair (only while running; only a WORKING session really unlinks the phone's device) -> stop ->
  forget auth -> start if it was running; delete = unpair -> stop -> forget. A stop of a running
  session waits ``stop_wait_seconds`` (WAHA: 3 s), an unpair ``unpair_wait_seconds`` (1 s);
  ``REALISTIC_TIMINGS`` / ``whago emulator --realistic`` applies WAHA's values.
- A graceful shutdown (ASGI lifespan) stops every running session, a STOPPED webhook each, while
  the store keeps them as running: the next boot of this worker restarts them.

Lifecycle: STOPPED -> STARTING -(boot_delay)-> SCAN_QR_CODE, with a fresh QR value and PNG on every
rotation (first lasts ``qr_first_seconds``, the rest ``qr_next_seconds``), each rotation emitting
``session.status`` SCAN_QR_CODE; after ``qr_max`` codes -> FAILED. A linked session (scanned, not
logged out) goes STARTING -> WORKING on start. PUT replaces the config and restarts a running
session. Logout forgets the link; a running session goes back to QR.

Persistence (WAHA's session storage, waha.md §1.5): ``EmulatorConfig(store=...)`` with a
``MemorySessionStore()`` (a shared object: hand the same one to the next emulator) or a
``FileSessionStore(directory)`` (JSON files under ``<directory>/<worker_id>/``). The store keeps
each session's name, config, whether it was running and its auth (the link). On start-up (ASGI
lifespan) the emulator loads its worker's sessions and starts the ones that were running: linked
ones go STARTING -> WORKING with no new QR, unlinked ones STARTING -> SCAN_QR_CODE, each change
emitting ``session.status`` as WAHA does; stopped ones stay STOPPED. Logout forgets the stored
auth, delete removes the record, ``POST /_emulator/reset`` wipes the worker's storage; a shutdown
keeps it. Without a store (the default) a restart forgets everything.

Control endpoints (no key, immune to faults):

- ``POST /_emulator/sessions/{name}/scan`` ``{phone?, pushName?}``: SCAN_QR_CODE -> WORKING, ``me``
  ``{id: "<digits>@c.us", pushName, lid, jid}`` (a random Brazilian number if no phone); 409 otherwise.
- ``POST /_emulator/sessions/{name}/fail``: -> FAILED, link kept (restart reconnects without QR).
- ``POST /_emulator/sessions/{name}/disconnect`` ``{status?: "FAILED"|"STOPPED"}``: the phone unlinked
  the device; link forgotten, default -> FAILED (WAHA's "re-auth needed").
- ``POST /_emulator/sessions/{name}/message`` ``{from?, text?}``: inbound message -> ``message`` and
  ``message.any`` events (422 unless WORKING).
- ``POST /_emulator/sessions/{name}/messages/{message_id}/ack`` ``{ack}``: a ``message.ack`` (-1..4)
  for a message the session sent (WAHA's id or WhatsApp's raw id; 404 otherwise), in any order,
  any number of times.
- ``POST /_emulator/sessions/{name}/flap`` ``{seconds?}``: GOWS on a keep-alive timeout, WORKING ->
  STARTING -> WORKING after ``seconds``, ``me`` kept meanwhile; 409 unless WORKING.
- ``POST /_emulator/sessions/{name}/fault`` ``{fault: "zombie"|null, survive_restart?}``: the liveness
  fault: status stays WORKING but nothing flows (no message/ack events; status changes still go
  out), ``GET /api/contacts/check-exists`` hangs (``zombie_hang_seconds``, default 30 s, then
  500); a restart (or stop) clears it unless ``survive_restart`` (then it is stored, so an
  instance restart keeps it too); 409 unless WORKING. ``whago emulator --zombie once|survive``
  turns every session into one once WORKING.
- ``GET /_emulator/phones/{phone}/devices``: the phone's "Linked devices" (``{session, worker,
  linked_at}``): a scan adds one; an unpair of a WORKING session or a phone-side unlink
  (``disconnect``) removes it; a logout of a stopped session does not.
- ``POST /_emulator/fault`` ``{mode: "none"|"error500"|"refuse"}``: error500 answers every WAHA route
  with 500; refuse answers 503 ``Connection: close`` (an ASGI app cannot refuse TCP; for a real
  connection error point the client at a closed port).
- ``POST /_emulator/webhooks`` ``{deliver?: bool, delay?: [min, max]}``: ``deliver`` false drops
  events instead of delivering them (still recorded in ``events``), to simulate missed webhooks;
  ``delay`` makes every delivery first wait a random time in [min, max] s, so events overtake
  each other.
- ``GET /_emulator/sessions`` (state dump), ``GET /_emulator/events``, ``POST /_emulator/reset``.

Webhooks go to each session's configured webhooks (subscribed events only, ``*`` = all), with
WAHA's envelope and headers (``X-Webhook-Hmac`` = hex HMAC-SHA512 of the raw body when a key is set,
``X-Webhook-Hmac-Algorithm``, ``X-Webhook-Request-Id`` (one per send, reused by its retries),
``X-Webhook-Timestamp`` = the event's own ``timestamp``). Each event is sent on its own task, as
WAHA's conductor does, so events overtake each other and a failing one holds back nothing. A
failed try (non-2xx or connection error) is retried per the webhook's ``retries``: ``attempts``
counts retries (1 + attempts tries; default 15 x 2 s constant), ``exponential`` waits
``2^(n-1) * delay`` plus up to 20 % jitter, and a ``Retry-After`` answer is honoured.
"""

from __future__ import annotations

from typing import Any

from app.waha.emulator.asgi import EmulatorApp
from app.waha.emulator.core import REALISTIC_TIMINGS, EmulatedSession, Emulator, EmulatorConfig
from app.waha.emulator.store import FileSessionStore, MemorySessionStore, SessionStore, StoredSession

__all__ = [
    "REALISTIC_TIMINGS",
    "EmulatedSession",
    "Emulator",
    "EmulatorApp",
    "EmulatorConfig",
    "FileSessionStore",
    "MemorySessionStore",
    "SessionStore",
    "StoredSession",
    "create_emulator_app",
    "serve_emulator",
]


def create_emulator_app(config: EmulatorConfig) -> EmulatorApp:
    return EmulatorApp(config)


def serve_emulator(
    host: str = "127.0.0.1",
    port: int = 3000,
    api_key: str = "",
    state_dir: str | None = None,
    realistic: bool = False,
    **timings: Any,
) -> None:
    """Run the emulator with uvicorn until interrupted (``whago emulator``).

    ``timings`` are other ``EmulatorConfig`` fields (``boot_delay_seconds``, ``qr_first_seconds``,
    ``worker_id``, ...). ``state_dir`` keeps sessions in JSON files there across restarts.
    """
    import uvicorn

    if state_dir:
        timings["store"] = FileSessionStore(state_dir)
    if realistic:
        timings = {**REALISTIC_TIMINGS, **timings}
    app = create_emulator_app(EmulatorConfig(api_key=api_key, **timings))
    # No access log: it would print `?x-api-key=` query strings.
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on", access_log=False)

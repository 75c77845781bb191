"""Nomad transport: python-nomad calls off the event loop, with typed errors.

python-nomad is synchronous (requests), so every call runs in a bounded ``ThreadPoolExecutor``
with one client (one ``requests.Session``) per worker thread: the event loop never blocks and a
session is never shared between threads. Every request carries an explicit timeout.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import msgspec
import nomad.api.exceptions as nomad_exc
import requests

import nomad
from app.core import context
from app.scheduler.errors import (
    JobModifyConflict,
    JobRejected,
    SchedulerError,
    SchedulerMisconfigured,
    SchedulerUnavailable,
)
from app.scheduler.nomad.diagnostics import safe_origin
from app.settings import Settings

Method = Literal["get", "post", "put", "delete"]

# Nomad answers every error without its own HTTP code with 500 (command/agent/http.go): job
# validation failures *and* cluster trouble. Texts of the latter (lower-cased) are retryable;
# any other 500 on a job submission or plan is Nomad refusing the job.
_TRANSIENT_500 = (
    "no cluster leader",
    "leadership lost",
    "not the leader",
    "no path to region",
    "no path to node",
    "eof",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "deadline exceeded",
    "timed out",
    "rate limit",
    "too many",
    "shutting down",
    "raft",
    "unavailable",
)
_REASON_LIMIT = 800


def nomad_text(resp: Any) -> str:
    """Nomad's error text, one line, bounded, prefixless (it never holds our token)."""
    text = (getattr(resp, "text", "") or "").strip()
    if text.startswith("rpc error: "):
        text = text[len("rpc error: ") :]
    return " ".join(text.split())[:_REASON_LIMIT]


def is_transient_500(text: str) -> bool:
    lowered = text.lower()
    return not lowered or any(marker in lowered for marker in _TRANSIENT_500)


# python-nomad endpoint objects we use, as attribute paths on ``nomad.Nomad``.
Endpoint = Literal["job", "jobs", "allocation", "status.leader", "variable"]


class NomadReply(msgspec.Struct, frozen=True):
    data: Any  # decoded JSON; None for an empty body, or a 404 with ``missing_ok``
    next_token: str | None = None  # X-Nomad-NextToken of paged listings
    index: int = 0  # X-Nomad-Index (for blocking queries); 0 when absent


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


class NomadTransport:
    def __init__(self, settings: Settings) -> None:
        self.address = settings.nomad_addr.rstrip("/")
        self.token = settings.nomad_token or None
        self.namespace = settings.nomad_namespace or "default"
        self.region = settings.nomad_region or None
        self.timeout = float(settings.nomad_timeout_seconds)
        self.origin = safe_origin(settings.nomad_addr)
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, int(settings.nomad_threads)), thread_name_prefix="whago-nomad"
        )
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # ------------------------------------------------------------------ the one caller
    async def request(
        self,
        what: str,
        endpoint: Endpoint,
        *path: str,
        method: Method = "get",
        params: Mapping[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
        missing_ok: bool = False,
        submits_job: bool = False,
        timeout: float | None = None,
    ) -> NomadReply:
        """``<method> /v1/<endpoint>/<path...>`` in the pool. ``what`` names the operation in
        error messages. A 404 is an error unless ``missing_ok`` (then ``data`` is None).
        ``submits_job``: the call sends a job (register, plan), so a 500 carrying a validation
        message is ``JobRejected`` (permanent) rather than ``SchedulerUnavailable``.
        ``timeout``: a longer budget for blocking queries."""

        # read here: the call runs in a pool thread, where the request's context is not visible
        request_headers = context.outgoing_headers()

        def call() -> NomadReply:
            target = operator.attrgetter(endpoint)(self._client())
            kwargs: dict[str, Any] = {"method": method, "timeout": timeout or self.timeout}
            if request_headers:
                kwargs["headers"] = dict(request_headers)  # the request id, for Nomad's logs
            if params:
                kwargs["params"] = dict(params)  # python-nomad may add namespace/region to it
            if body is not None:
                kwargs["json"] = body
            try:
                resp = target.request(*path, **kwargs)
            except nomad_exc.URLNotFoundNomadException:
                if missing_ok:
                    return NomadReply(data=None)
                raise
            data = msgspec.json.decode(resp.content) if resp.content else None
            return NomadReply(
                data=data,
                next_token=resp.headers.get("X-Nomad-NextToken") or None,
                index=_int(resp.headers.get("X-Nomad-Index")),
            )

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except nomad_exc.URLNotFoundNomadException as exc:
            raise SchedulerUnavailable(f"Nomad answered 404 while {what}") from exc
        except RuntimeError as exc:
            if "shutdown" in str(exc):  # executor closed under us
                raise SchedulerUnavailable("scheduler is shutting down") from None
            raise self._translate(exc, what, submits_job) from None
        except Exception as exc:
            raise self._translate(exc, what, submits_job) from None

    async def read(self, what: str, endpoint: Endpoint, *path: str) -> Any:
        """GET one resource; None when Nomad has no such thing (404)."""
        return (await self.request(what, endpoint, *path, missing_ok=True)).data

    # ------------------------------------------------------------------ plumbing
    def _client(self) -> nomad.Nomad:
        client = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(session)
            client = nomad.Nomad(
                address=self.address,
                token=self.token,
                namespace=self.namespace,
                region=self.region,
                timeout=self.timeout,
                verify=True,  # python-nomad defaults to *not* verifying TLS
                session=session,
            )
            self._local.client = client
        return client

    def _translate(self, exc: Exception, what: str, submits_job: bool = False) -> SchedulerError:
        # Messages name the server by origin only: never the token, never userinfo in the URL.
        if isinstance(exc, nomad_exc.URLNotAuthorizedNomadException):
            return SchedulerMisconfigured(
                f"Nomad ACL token rejected (403) while {what}; check WHAGO_NOMAD_TOKEN and its policy (nomad/README.md)"
            )
        if isinstance(exc, nomad_exc.BadRequestNomadException):
            return JobRejected(f"Nomad rejected the request while {what}: {nomad_text(exc.nomad_resp)}")
        if isinstance(exc, nomad_exc.BaseNomadException):
            resp = exc.nomad_resp
            if isinstance(resp, requests.Response):
                text = nomad_text(resp)
                if "Enforcing job modify index" in text:  # structs.RegisterEnforceIndexErrPrefix
                    return JobModifyConflict(f"Nomad refused a check-and-set while {what}: {text}")
                if submits_job and resp.status_code == 500 and not is_transient_500(text):
                    return JobRejected(f"Nomad refused the job while {what}: {text}")
                suffix = f": {text}" if text else ""
                return SchedulerUnavailable(f"Nomad answered HTTP {resp.status_code} while {what}{suffix}")
            if isinstance(resp, requests.Timeout):
                return SchedulerUnavailable(f"Nomad at {self.origin} timed out after {self.timeout:g}s while {what}")
            return SchedulerUnavailable(f"Nomad unreachable at {self.origin} while {what}")
        if isinstance(exc, (ValueError, msgspec.DecodeError)):
            return SchedulerUnavailable(f"Nomad returned an unreadable response while {what}")
        return SchedulerUnavailable(f"Nomad call failed while {what}: {type(exc).__name__}")

    async def close(self) -> None:
        await asyncio.to_thread(functools.partial(self._executor.shutdown, wait=True, cancel_futures=True))
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

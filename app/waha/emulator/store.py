"""Session storage for the emulator: what WAHA keeps in ``/app/.sessions`` or its PostgreSQL
database (waha.md §1.5), so that a restarted instance restarts the sessions it was running.

Per session it keeps the name, the config (as WAHA echoes it, secrets included, exactly like
WAHA's own storage), whether the session was running (started and not stopped by a user), and
its auth (the linked device's ``me``; ``None`` until a scan or after logout/unlink). Records are
keyed by worker id (``WAHA_WORKER_ID``): like WAHA, a worker only restarts its own sessions.

Two implementations:

- ``MemorySessionStore``: a plain shared object. Hand the same one to every emulator that plays
  "the same WAHA database" (the Nomad double keeps one for all its allocations).
- ``FileSessionStore(directory)``: one JSON file per session under ``<directory>/<worker id>/``
  (the local scheduler of ``whago dev`` uses ``<dev_state_dir>/emulators/``). Files are written
  atomically and readable by the owner only: they hold the webhook HMAC key and proxy passwords.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class StoredSession(msgspec.Struct, kw_only=True):
    name: str
    config: dict[str, Any]
    running: bool = False
    auth: dict[str, Any] | None = None
    # a "zombie" fault set to survive restarts (the emulator's liveness fault): instance restarts too
    zombie: bool = False


@runtime_checkable
class SessionStore(Protocol):
    def load(self, worker_id: str) -> list[StoredSession]:
        """Every session stored for this worker (any order)."""
        ...

    def save(self, worker_id: str, session: StoredSession) -> None: ...

    def remove(self, worker_id: str, name: str) -> None:
        """Forget one session (WAHA's delete). Idempotent."""
        ...

    def clear(self, worker_id: str) -> None:
        """Forget every session of this worker (its storage was wiped). Idempotent."""
        ...


def _check(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise ValueError(f"unsafe {kind} for the session store: {value!r}")
    return value


class MemorySessionStore:
    """Thread-safe: emulators served from different threads may share one store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, bytes]] = {}

    def load(self, worker_id: str) -> list[StoredSession]:
        with self._lock:
            blobs = list(self._data.get(worker_id, {}).values())
        return [msgspec.json.decode(b, type=StoredSession) for b in blobs]

    def save(self, worker_id: str, session: StoredSession) -> None:
        blob = msgspec.json.encode(session)  # a copy: later changes to the session don't leak in
        with self._lock:
            self._data.setdefault(worker_id, {})[session.name] = blob

    def remove(self, worker_id: str, name: str) -> None:
        with self._lock:
            self._data.get(worker_id, {}).pop(name, None)

    def clear(self, worker_id: str) -> None:
        with self._lock:
            self._data.pop(worker_id, None)

    def workers(self) -> list[str]:
        with self._lock:
            return sorted(w for w, sessions in self._data.items() if sessions)


class FileSessionStore:
    """``<directory>/<worker id>/<session name>.json``; a worker's directory is its storage."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, worker_id: str) -> Path:
        return self.directory / _check("worker id", worker_id)

    def load(self, worker_id: str) -> list[StoredSession]:
        folder = self.path(worker_id)
        out = []
        for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                out.append(msgspec.json.decode(file.read_bytes(), type=StoredSession))
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue  # a torn or foreign file: skip it, like a corrupt session folder
        return out

    def save(self, worker_id: str, session: StoredSession) -> None:
        folder = self.path(worker_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / f"{_check('session name', session.name)}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(msgspec.json.encode(session))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self, worker_id: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path(worker_id) / f"{_check('session name', name)}.json").unlink()

    def clear(self, worker_id: str) -> None:
        shutil.rmtree(self.path(worker_id), ignore_errors=True)

"""WAHA adapter: HTTP client, wire schemas, session naming/config, and an emulator for tests."""

from app.waha.client import (
    WahaClient,
    WahaClientPool,
    WahaConflict,
    WahaError,
    WahaNotFound,
    WahaRejected,
    WahaSessionExists,
    WahaTimedOut,
    WahaUnavailable,
)
from app.waha.schemas import DEFAULT_EVENTS, MeInfo, ProxyConfig, SessionDTO, SessionInfo
from app.waha.sessions import build_session_config, chip_id_from_session, chip_metadata, session_name

__all__ = [
    "DEFAULT_EVENTS",
    "MeInfo",
    "ProxyConfig",
    "SessionDTO",
    "SessionInfo",
    "WahaClient",
    "WahaClientPool",
    "WahaConflict",
    "WahaError",
    "WahaNotFound",
    "WahaRejected",
    "WahaSessionExists",
    "WahaTimedOut",
    "WahaUnavailable",
    "build_session_config",
    "chip_id_from_session",
    "chip_metadata",
    "session_name",
]

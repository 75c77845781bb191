"""What an open event stream holds on to: its user, whether its authorization still stands, and
its slot among the user's bounded number of open streams (all provided by app.auth)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class StreamLease:
    user_id: UUID
    # False once the user is disabled or their tokens were revoked: the stream then ends
    still_valid: Callable[[], Awaitable[bool]]
    # keeps the stream's slot (slots of crashed processes expire on their own)
    refresh: Callable[[], Awaitable[None]]
    release: Callable[[], Awaitable[None]]
    # how often ``refresh`` must run to keep the slot (a fraction of the slot's expiry): far less
    # often than the authorization check, which is what 1,000 idle streams mostly cost
    refresh_seconds: float = 20.0

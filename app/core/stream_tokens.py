"""The tokens of a process's open event streams, whose revocation states are read together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from app.core.security import TokenClaims, TokenSigner, TokenState

# (user id, token id) pairs -> their states by token id, in one read (provided by app.auth)
StatesReader = Callable[[list[tuple[uuid.UUID, uuid.UUID]]], Awaitable[dict[uuid.UUID, TokenState]]]


class WatchedTokens:
    """The tokens of this process's open event streams, whose revocation states are read together:
    one statement per REVOCATION_CACHE_SECONDS for all of them instead of one per token (1,000
    idle streams cost 250 queries/s that way, issue 17). States go through the signer's cache, so
    a token is trusted exactly as long as before and ``forget_states`` still takes effect at once.
    Per process, like that cache: nothing here is shared across processes."""

    def __init__(self, tokens: TokenSigner) -> None:
        self._tokens = tokens
        self._open: dict[uuid.UUID, TokenClaims] = {}
        self._reading: asyncio.Task[dict[uuid.UUID, TokenState]] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def unwatch(self, claims: TokenClaims) -> None:
        self._open.pop(claims.token_id, None)

    async def state(self, claims: TokenClaims, read: StatesReader) -> TokenState | None:
        """The token's state, at most REVOCATION_CACHE_SECONDS old (the token is watched from now
        on, until ``unwatch``). None when the shared read started before the token was watched."""
        self._open[claims.token_id] = claims
        state = self._tokens.cached_state(claims)
        if state is not None:
            return state
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_all(read), name="whago-token-states")
            self._reading.add_done_callback(_retrieve)
        # shielded: one stream going away must not cancel the read the others wait for
        states = await asyncio.shield(self._reading)
        return states.get(claims.token_id)

    async def _read_all(self, read: StatesReader) -> dict[uuid.UUID, TokenState]:
        watched = list(self._open.values())
        states = await read([(claims.user_id, claims.token_id) for claims in watched])
        for claims in watched:
            if (state := states.get(claims.token_id)) is not None:
                self._tokens.remember(claims, state)
        return states


def _retrieve(task: asyncio.Task) -> None:
    # the waiters report a failed read; a read whose waiters all went away must not log as unretrieved
    if not task.cancelled():
        task.exception()

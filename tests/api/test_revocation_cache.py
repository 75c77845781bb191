"""The revocation check reads the database at most once per token per REVOCATION_CACHE_SECONDS
(every authenticated request would otherwise cost a query), and still sees a revocation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_one_state_read_per_token_per_cache_window(settings, clean_state, conn, monkeypatch):
    from app.auth import service as auth_service
    from app.container import Container
    from app.core import db
    from app.core.errors import NotAuthenticated
    from app.core.security import REVOCATION_CACHE_SECONDS

    user_id = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('c@example.com', 'h') RETURNING id")
    reads = []
    real = auth_service.token_state

    async def counted(user, token_id):
        reads.append(token_id)
        return await real(user, token_id)

    monkeypatch.setattr(auth_service, "token_state", counted)
    clock = Clock()
    await db.start_pool(settings)
    container = Container.build(settings)
    monkeypatch.setattr(container.tokens, "_monotonic", clock)  # the cache's clock, controlled
    try:
        token, _ = container.tokens.issue(user_id, 0)
        claims = container.tokens.verify(token)
        for _ in range(5):
            await auth_service.ensure_not_revoked(container, claims)
        assert len(reads) == 1
        await conn.execute("UPDATE users SET token_version = token_version + 1 WHERE id = $1", user_id)
        await auth_service.ensure_not_revoked(container, claims)  # trusted for the window
        clock.now += REVOCATION_CACHE_SECONDS + 0.1
        with pytest.raises(NotAuthenticated):
            await auth_service.ensure_not_revoked(container, claims)
        assert len(reads) == 2
    finally:
        await container.aclose()
        await db.close_pool()

"""``whago rotate-encryption-key``: re-encrypt stored proxy passwords with the newest key."""

from __future__ import annotations

from app.container import Container
from app.core import db
from app.proxies.service import ProxyService
from app.settings import Settings


async def reencrypt_proxy_secrets(settings: Settings) -> int:
    services = Container.build(settings)
    try:
        return await ProxyService(services).reencrypt_all()
    finally:
        await services.aclose()
        await db.close_pool()

"""Provider of the proxies service (the admin proxies routes)."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.container import Container
from app.proxies.service import ProxyService


def provide_proxy_service(container: NamedDependency[Container]) -> ProxyService:
    return ProxyService(container)

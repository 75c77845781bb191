"""The client's IP address: the TCP peer, or ``X-Forwarded-For`` when (and only when) the peer is
one of ``WHAGO_TRUSTED_PROXIES`` — otherwise anyone could pick an address per request and walk
around every per-IP limit."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from litestar.connection import ASGIConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_trusted(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in spec.split(",") if p.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(connection: ASGIConnection, trusted_spec: str) -> str:
    peer = connection.client.host if connection.client else ""
    trusted = parse_trusted(trusted_spec)
    peer_ip = _ip(peer)
    if not trusted or peer_ip is None or not any(peer_ip in net for net in trusted):
        return peer or "unknown"
    # Walk X-Forwarded-For from the right: the first address that is not one of our proxies is the
    # client (entries left of it were written by the client and prove nothing).
    hops = [h for h in connection.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        hop_ip = _ip(hop)
        if hop_ip is None:
            break
        if not any(hop_ip in net for net in trusted):
            return str(hop_ip)
    return peer

"""Serve an ASGI app over real HTTP on a loopback port, in a background thread with its own loop.

Used for the WAHA emulator, the Nomad/Consul doubles and the API itself in tests, so that every
client under test talks real HTTP rather than an in-process transport.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServedApp:
    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, lifespan: str = "on") -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        # proxy_headers off, as in ``whago serve``: WHAGO_TRUSTED_PROXIES alone decides about X-Forwarded-For
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan=lifespan, loop="asyncio", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"asgi-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {self.port} did not start in {timeout}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


@contextlib.contextmanager
def serve(app, **kwargs) -> Iterator[ServedApp]:
    served = ServedApp(app, **kwargs).start()
    try:
        yield served
    finally:
        served.stop()

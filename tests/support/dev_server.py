"""A real ``whago dev`` in a subprocess, on a fixed port and a scratch database, for tests that drive
it from outside (the browser tests of the web console)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx


def poll(what: str, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fetch()
            if done(value):
                return value
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")


def drop_database(url: str) -> None:
    async def run() -> None:
        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


class DevServer:
    """One ``whago dev`` process at a time on a fixed port; logs appended to ``log``."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "dev", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        poll(
            "whago dev to be ready",
            lambda: self.alive_and(httpx.get(self.url + "/health/ready", timeout=2)),
            lambda r: r.status_code == 200,
            timeout=30,
        )

    def alive_and(self, value: Any) -> Any:
        assert self.process is not None
        assert self.process.poll() is None, f"whago dev exited:\n{self.tail()}"
        return value

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # Ctrl+C, as a developer stops it
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"whago dev did not stop on SIGINT:\n{self.tail()}") from None
        assert self.process.returncode == 0, f"whago dev exited with {self.process.returncode}:\n{self.tail()}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

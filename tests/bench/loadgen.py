"""A small keep-alive HTTP/1.1 load generator for the benchmarks.

Deliberately minimal (raw asyncio streams, no client library) so that on a 2-core machine the
load generator costs far less CPU than the server it measures. Bounded in time and count.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rps:9.0f} req/s  p50 {self.percentile(50):7.2f} ms  "
            f"p99 {self.percentile(99):7.2f} ms  ({self.requests} ok, {self.errors} errors)"
        )


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, (await reader.readexactly(length) if length else b"")


async def run(
    name: str,
    host: str,
    port: int,
    make_request,
    *,
    connections: int = 64,
    duration: float = 5.0,
    max_requests: int = 1_000_000,
    expect_status: int = 200,
) -> Result:
    """``make_request(i) -> bytes`` builds the raw request (so bodies and signatures can vary)."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors, counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and counter < max_requests:
                counter += 1
                request = make_request(counter)
                started = time.perf_counter()
                writer.write(request)
                status, _ = await read_response(reader)
                if status == expect_status:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return Result(name, len(latencies), errors, elapsed, latencies)


def get_request(path: str, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post_request(path: str, body: bytes, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def summary(result: Result, baseline: Result) -> str:
    return f"{result.name} / {baseline.name} throughput ratio: {result.rps / baseline.rps:.2f}"


__all__ = ["Result", "get_request", "post_request", "read_response", "run", "statistics", "summary"]

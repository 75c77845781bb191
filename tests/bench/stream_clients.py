"""Many open live-event streams in one asyncio process (raw sockets), separate from the server so
client CPU is not counted as server cost. Driven by bench_streams / bench_rss over stdin/stdout:

    python -m tests.bench.stream_clients --url URL --tenants FILE --per-user K --out FILE

``FILE`` is a JSON list of ``{"user_id", "token"}`` (access tokens). Each stream gets a fresh stream
token (``POST /api/v1/auth/stream-token``) and opens ``GET /api/v1/events?token=`` on the same
keep-alive connection. Once every stream has received its ``: connected`` frame the process prints
``ready <open> <failed>``; then it answers ``count`` with ``count <events> <streams still open>``
and ``stop`` by writing every received event to ``--out`` (JSON lines: stream index, user id,
time.monotonic() at receipt, event, data) and printing ``done``. time.monotonic() is
CLOCK_MONOTONIC, the same clock in every process on Linux, so the driver can subtract its send
times from these receipt times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench.loadgen import get_request, post_request, read_response


class Stream:
    def __init__(self, index: int, user_id: str) -> None:
        self.index = index
        self.user_id = user_id
        self.events: list[tuple[float, str, str]] = []
        self.connected = asyncio.Event()
        self.closed = False
        self.error = ""


async def _chunks(reader: asyncio.StreamReader, chunked: bool):
    while True:
        if not chunked:
            data = await reader.read(65536)
            if not data:
                return
            yield data
            continue
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


async def run_stream(stream: Stream, host: str, port: int, token: str, opening: asyncio.Semaphore) -> None:
    writer = None
    try:
        async with opening:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            writer.write(post_request("/api/v1/auth/stream-token", b"", {"Authorization": f"Bearer {token}"}))
            status, body = await asyncio.wait_for(read_response(reader), 30)
            if status != 200:
                raise RuntimeError(f"stream-token {status} {body[:200]!r}")
            stream_token = json.loads(body)["token"]
            writer.write(get_request(f"/api/v1/events?token={stream_token}", {"Accept": "text/event-stream"}))
            status_line = await asyncio.wait_for(reader.readline(), 30)
            status = int(status_line.split()[1])
            chunked = False
            while True:
                line = await asyncio.wait_for(reader.readline(), 30)
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if status != 200:
                raise RuntimeError(f"events {status}")
        buffer = b""
        async for data in _chunks(reader, chunked):
            now = time.monotonic()
            buffer += data.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                event, datas = "message", []
                for line in frame.decode().split("\n"):
                    if line.startswith(":"):
                        if line[1:].strip() == "connected":
                            stream.connected.set()
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        datas.append(line[5:].lstrip(" "))
                if datas:
                    stream.events.append((now, event, "\n".join(datas)))
    except (OSError, RuntimeError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    finally:
        stream.closed = True
        stream.connected.set()  # (a failed stream must not hold up "ready")
        if writer is not None:
            writer.close()


async def main_async(args: argparse.Namespace) -> None:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    tenants = json.loads(Path(args.tenants).read_text())  # noqa: ASYNC240  (before any stream)
    opening = asyncio.Semaphore(args.concurrency)
    streams, tasks = [], []
    for tenant in tenants:
        for _ in range(args.per_user):
            stream = Stream(len(streams), tenant["user_id"])
            streams.append(stream)
            tasks.append(asyncio.create_task(run_stream(stream, host, port, tenant["token"], opening)))
    await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), 300)
    failed = [s for s in streams if s.closed]
    for s in failed[:5]:
        print(f"stream {s.index} failed: {s.error}", file=sys.stderr, flush=True)
    print(f"ready {len(streams) - len(failed)} {len(failed)}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        command = (await stdin.readline()).decode().strip()
        if command == "count":
            received = sum(1 for s in streams for e in s.events if e[1] == "chip.status")
            print(f"count {received} {sum(1 for s in streams if not s.closed)}", flush=True)
        elif command in ("stop", ""):
            break
    lines = [json.dumps([s.index, s.user_id, at, event, data]) for s in streams for at, event, data in s.events]
    Path(args.out).write_text("".join(line + "\n" for line in lines))  # noqa: ASYNC240  (after the run)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    print("done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tenants", required=True)
    parser.add_argument("--per-user", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=50, help="streams being opened at once")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

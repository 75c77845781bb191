"""Reading the API's server-sent event stream (GET /api/v1/events) the way a browser would."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx

EVENTS = "/api/v1/events"


class SSEReader:
    """Parses a text/event-stream response in a background task (per the HTML spec's rules)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.frames: list[dict] = []  # every frame: {"comment": [...], "event": ..., "data": ...}
        self.comments: list[str] = []
        self.connected = asyncio.Event()
        self._events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        frame: dict = {"comment": [], "event": None, "data": None}
        async for line in self.response.aiter_lines():
            if line == "":
                self.frames.append(frame)
                if frame["data"] is not None:  # what EventSource would dispatch
                    self._events.put_nowait(
                        (frame["event"] or "message", json.loads(frame["data"]) if frame["data"] else None)
                    )
                frame = {"comment": [], "event": None, "data": None}
                continue
            if line.startswith(":"):
                comment = line[1:].strip()
                frame["comment"].append(comment)
                self.comments.append(comment)
                if comment == "connected":
                    self.connected.set()
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                frame["data"] = value if frame["data"] is None else frame["data"] + "\n" + value
            elif name == "event":
                frame["event"] = value

    async def next(self, timeout: float = 5.0) -> tuple[str, dict]:
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no event within {timeout}s (frames so far: {self.frames})") from None

    def pending(self) -> int:
        return self._events.qsize()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def stream_token(client: httpx.AsyncClient, user: dict) -> str:
    response = await client.post("/api/v1/auth/stream-token", headers=user["headers"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "expires_in"}
    assert 0 < body["expires_in"] <= 120
    return body["token"]


@contextlib.asynccontextmanager
async def open_stream(client: httpx.AsyncClient, user: dict) -> AsyncIterator[SSEReader]:
    token = await stream_token(client, user)
    async with client.stream("GET", EVENTS, params={"token": token}, timeout=httpx.Timeout(10, read=60)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        reader = SSEReader(response)
        try:
            await asyncio.wait_for(reader.connected.wait(), 5)
            yield reader
        finally:
            await reader.close()

"""app/server.py's CoalescingTransport: the writes of one event-loop turn leave in one
send (a response's headers and body together), nothing is lost or reordered, and a
close sends what is pending first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.server import CoalescingTransport


def _run(scenario: Callable[[], Coroutine[Any, Any, Recorder]]) -> Recorder:
    """asyncio.run on a thread of its own (another test may leave a loop running here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_turn_leave_in_one_send_in_order() -> None:
    async def scenario() -> Recorder:
        raw = Recorder()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert raw.writes == []  # nothing sent within the turn
        assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
        await asyncio.sleep(0)
        transport.writelines([b"second", b" response"])
        await asyncio.sleep(0)
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest: as is
        return raw

    raw = _run(scenario)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"second response"]


def test_close_sends_what_is_pending_first() -> None:
    async def scenario() -> Recorder:
        raw = Recorder()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 431 Too Large\r\nconnection: close\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
        return raw

    raw = _run(scenario)
    assert raw.writes == [b"HTTP/1.1 431 Too Large\r\nconnection: close\r\n\r\n"]
    assert raw.closed

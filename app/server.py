"""How ``auxsel serve`` runs uvicorn: limits and timeouts an ASGI app cannot set itself.

uvicorn's default HTTP parser (httptools) takes a request's headers without any size
limit and waits for them without any timeout: only an idle kept-alive connection times
out. ``GuardedHttpToolsProtocol`` adds both, per request:

* the request line and headers may take AUXSEL_MAX_HEADER_KB; a request whose headers
  are still incomplete beyond that gets ``431`` and a closed connection;
* they must arrive within AUXSEL_HEADER_TIMEOUT_S, counted from the connection opening
  (a client that connects and sends nothing) or from the first byte of a later request
  on the same connection; after that the client gets ``408`` and a closed connection.

The body's read timeout and size limits are the ASGI middleware's (app/security/guard.py).
Without httptools, uvicorn's h11 parser is used with its own header size limit
(``h11_max_incomplete_event_size``) and no header timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, TypedDict

from app.settings import Settings, get_settings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def _response(status: bytes, text: str) -> bytes:
    body = text.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class _Unavailable:  # pragma: no cover - stands in when httptools is missing
    pass


_Base: Any = HttpToolsProtocol if HttpToolsProtocol is not None else _Unavailable


class CoalescingTransport:
    """A transport whose writes in one turn of the event loop leave in one ``send``.

    uvicorn writes a response's status line and headers, then its body, as two writes:
    two system calls, and on a busy machine two wake-ups of the client, for a status
    poll of a few hundred bytes (a third of its time went to them). Here the writes of
    one turn are joined and sent at the end of it; everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(_Base):  # type: ignore[misc]
    """httptools' protocol with a header size limit and a header read timeout, from
    AUXSEL_MAX_HEADER_KB and AUXSEL_HEADER_TIMEOUT_S (module level, so that uvicorn can
    hand it to worker processes)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_header_bytes = settings.max_header_kb * 1024
        self._header_timeout_s = settings.header_timeout_s
        self._in_headers = False
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout_s, self._headers_late)

    def _stop_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: bytes, text: str) -> None:
        self._stop_timer()
        self._in_headers = False
        if not self.transport.is_closing():
            self.transport.write(_response(status, text))
            self.transport.close()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._in_headers:
            self._refuse(
                b"408 Request Timeout",
                f"The request headers did not arrive within {self._header_timeout_s:g} s "
                "(AUXSEL_HEADER_TIMEOUT_S).",
            )

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        waiting = self._in_headers
        super().data_received(data)
        # Counted after parsing, so that a body arriving with the headers in one read
        # does not count; a read is at most 256 KiB, which bounds the overshoot.
        if waiting and self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._refuse(
                    b"431 Request Header Fields Too Large",
                    f"The request line and headers exceed {self._max_header_bytes // 1024} "
                    "KiB (AUXSEL_MAX_HEADER_KB).",
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # a later request on a kept-alive connection
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_timer()
        super().on_headers_complete()


def _logs_info(level_name: str) -> bool:
    level = logging.getLevelName(level_name.upper())
    return not isinstance(level, int) or level <= logging.INFO


class UvicornOptions(TypedDict):
    http: type[asyncio.Protocol] | str
    h11_max_incomplete_event_size: int
    timeout_keep_alive: int
    limit_concurrency: int | None
    access_log: bool


def uvicorn_options(settings: Settings) -> UvicornOptions:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` from the settings."""
    max_header_bytes = settings.max_header_kb * 1024
    http: type[asyncio.Protocol] | str = "h11"  # uvicorn reads the class by name
    if HttpToolsProtocol is not None:
        http = GuardedHttpToolsProtocol
    return {
        "http": http,
        "h11_max_incomplete_event_size": max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.limit_concurrency or None,
        # One INFO line per request: written when AUXSEL_LOG_LEVEL asks for INFO (the
        # default) or DEBUG, not at WARNING and above (it was 7 % of a status poll).
        "access_log": _logs_info(settings.log_level),
    }

"""HTTP/1.1 to one homeserver: keep-alive connections, answers parsed by httptools.

Why not aiohttp (which matrix-nio uses, and which this tester still uses
through nio for the rare calls: password login, joins, uploads)? A suite is
a few thousand small requests, each answered after the tester has been idle
for a while, and each costs CPU to wake up for. Measured on the machine of
issue 4, a ``PUT .../send`` costs 0.80 ms of the tester's CPU through nio and
aiohttp and 0.25 ms through this module (``bench/suite.py`` shows the effect
on a whole suite). The parsing, where the subtlety lies (chunked bodies,
keep-alive rules), is llhttp's, through httptools; what is left here is the
plumbing: one connection per request in flight, reused afterwards.

Each request has a deadline of its own (``timeout``), kept with one timer
rather than an ``asyncio.timeout`` around it: both end the wait, but the
timer costs less, and a suite waits for thousands of answers. A request
that times out or is cancelled while its answer is on the way closes its
connection, which is never reused.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

import httptools

from matrix_bot_tester import __version__

_USER_AGENT = f"matrix-bot-tester/{__version__}"
# No Matrix answer this tester asks for comes near this; a server that sends more
# (an endless body) is cut off rather than allowed to fill the memory.
MAX_ANSWER_BYTES = 256 * 1024 * 1024
# Header names that say how long an answer is, as servers usually spell them; any
# other spelling is found by lowering every name (see ``on_headers_complete``).
_SIZE_HEADERS = frozenset(
    {b"Content-Length", b"content-length", b"Transfer-Encoding", b"transfer-encoding"}
)
# Idle connections kept for reuse: one per conversation running at once and the
# sync loop's own, with room to spare. More are opened when needed, and closed after.
_MAX_IDLE = 16


Answer = tuple[int, bytes]  # an answer's status and body


class TransportError(ConnectionError):
    """The connection failed or the answer was not HTTP: the server is not reachable as one."""


class ServerDisconnected(TransportError):
    """The server closed the connection before its answer was complete."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        # httptools calls ``on_header`` for every header of every answer; a dict's own
        # __setitem__ takes them without a Python call each (about ten per answer).
        self._headers: dict[bytes, bytes] = {}
        self.on_header = self._headers.__setitem__
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._headers_done = False
        self._sized = False  # the answer says how long it is (a length, or chunks)
        self._size = 0
        self._keep_alive = False
        self.closed = False

    # Protocol callbacks (asyncio's, then httptools')

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio's, hence the cast).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"not an HTTP answer ({type(exc).__name__})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._headers_done and exc is None and not self._sized:
            # An answer without a length ends where the connection does.
            answer.set_result((self._status(), b"".join(self._body)))
        else:
            answer.set_exception(ServerDisconnected("the server closed the connection"))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        names = self._headers.keys()
        self._sized = not names.isdisjoint(_SIZE_HEADERS) or any(
            name.lower() in _SIZE_HEADERS for name in names
        )

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._fail(TransportError(f"an answer larger than {MAX_ANSWER_BYTES >> 20} MiB"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        # Asked now: once the message is complete the parser starts on the next one.
        parser = self._parser
        self._keep_alive = parser.should_keep_alive()
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result((parser.get_status_code(), b"".join(self._body)))

    # Used by Transport

    def _status(self) -> int:
        status: int = self._parser.get_status_code()
        return status

    def _fail(self, exc: Exception) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)
        self.close()

    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Answer]:
        """Send one request; the future of its whole answer: (status, body)."""
        assert self._transport is not None and self._answer is None
        answer: asyncio.Future[Answer] = loop.create_future()
        self._answer = answer
        self._body = []
        self._headers.clear()
        self._headers_done = self._sized = self._keep_alive = False
        self._size = 0
        self._transport.write(request)
        return answer

    def finish(self) -> None:
        """The request is over (answered, failed or given up on)."""
        self._answer = None

    def time_out(self) -> None:
        """The deadline passed before the whole answer came."""
        self._fail(TimeoutError())

    def reusable(self) -> bool:
        return not self.closed and self._keep_alive

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Transport:
    """Requests to one server (the homeserver's base URL), connections kept alive."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        # What follows the request line in every request.
        self._common_headers = (
            f" HTTP/1.1\r\nHost: {self._host_header}\r\nUser-Agent: {_USER_AGENT}\r\n"
            "Accept-Encoding: identity\r\n"
        )
        self._ssl: ssl.SSLContext | None = None
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Answer:
        """``method path`` with an optional body: the answer's status and body.

        Raises TimeoutError when ``timeout`` seconds pass first (connecting
        included), and TransportError (or another OSError: refused, unreachable,
        TLS) when the server cannot be reached or does not speak HTTP.
        """
        head = f"{method} {self._prefix}{path}{self._common_headers}"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT"):
            head += "Content-Length: 0\r\n"
        request = head.encode("utf-8") + b"\r\n" + (body or b"")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(connection, request, loop, deadline)
            except ServerDisconnected:
                # An idle connection the server had already closed (its keep-alive
                # ran out): the request never reached it. Try the next one.
                continue
        if deadline is None:
            connection = await self._connect()
        else:
            async with asyncio.timeout_at(deadline):
                connection = await self._connect()
        return await self._exchange(connection, request, loop, deadline)

    async def _connect(self) -> _Connection:
        if self._tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection,
            self._host,
            self._port,
            ssl=self._ssl if self._tls else None,
            server_hostname=self._host if self._tls else None,
        )
        return connection

    async def _exchange(
        self,
        connection: _Connection,
        request: bytes,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
    ) -> Answer:
        self._busy.add(connection)
        timer = None if deadline is None else loop.call_at(deadline, connection.time_out)
        try:
            answer = await connection.send(request, loop)
        except BaseException:
            connection.close()  # an answer may still be on its way: never reuse it
            raise
        finally:
            connection.finish()
            if timer is not None:
                timer.cancel()
            self._busy.discard(connection)
        if connection.reusable() and len(self._idle) < _MAX_IDLE:
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        """Close every connection; requests still under way fail."""
        for connection in [*self._idle, *self._busy]:
            connection.close()
        self._idle.clear()

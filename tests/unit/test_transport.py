"""The HTTP transport against small loopback servers that answer as real ones may:
with a length, chunked, until the connection closes, closing idle connections,
or not in HTTP at all. (Matrix itself is tested against Synapse.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from matrix_bot_tester import transport as transport_module
from matrix_bot_tester.transport import Transport, TransportError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """One request: its first line and body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return lines[0], body


class Server:
    """A loopback server; counts the connections it accepted."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def started(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.server.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def echo_with_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: every request answered with its first line and body, by length."""
    while True:
        first, body = await read_request(reader)
        answer = first.encode() + b"|" + body
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()


def test_answers_with_a_length_reuse_one_connection() -> None:
    async def test() -> None:
        async for server in started(echo_with_length):
            transport = Transport(server.url + "/prefix/")
            first = await transport.request("PUT", "/a", b'{"x": 1}', token="t")
            second = await transport.request("GET", "/b?c=d")
            transport.close()
            assert first == (200, b'PUT /prefix/a HTTP/1.1|{"x": 1}')
            assert second == (200, b"GET /prefix/b?c=d HTTP/1.1|")
            assert server.connections == 1

    run(test)


def test_requests_at_once_get_a_connection_each_and_their_own_answer() -> None:
    async def test() -> None:
        async for server in started(echo_with_length):
            transport = Transport(server.url)
            answers = await asyncio.gather(*(transport.request("GET", f"/{n}") for n in range(5)))
            transport.close()
            assert [body for _, body in answers] == [
                f"GET /{n} HTTP/1.1|".encode() for n in range(5)
            ]
            assert server.connections == 5

    run(test)


def test_a_chunked_answer_is_joined() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()
        await reader.read()  # keep the connection until the client closes it

    async def test() -> None:
        async for server in started(chunked):
            transport = Transport(server.url)
            assert await transport.request("GET", "/") == (200, b"hello world")
            transport.close()

    run(test)


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nnot here")
        await writer.drain()

    async def test() -> None:
        async for server in started(until_close):
            transport = Transport(server.url)
            assert await transport.request("GET", "/") == (404, b"not here")
            # The connection is not reused: the next request opens another.
            assert await transport.request("GET", "/") == (404, b"not here")
            transport.close()
            assert server.connections == 2

    run(test)


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then closes, as a server whose keep-alive ran out

    async def test() -> None:
        async for server in started(one_answer):
            transport = Transport(server.url)
            assert await transport.request("GET", "/") == (200, b"ok")
            assert await transport.request("GET", "/") == (200, b"ok")
            transport.close()
            assert server.connections == 2

    run(test)


def test_an_answer_that_is_not_http_is_a_transport_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def test() -> None:
        async for server in started(garbage):
            transport = Transport(server.url)
            with pytest.raises(TransportError):
                await transport.request("GET", "/")
            transport.close()

    run(test)


def test_a_closed_port_is_an_os_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed

    async def test() -> None:
        transport = Transport(f"http://127.0.0.1:{port}")
        with pytest.raises(OSError):
            await transport.request("GET", "/")

    run(test)


def test_a_request_cancelled_by_its_deadline_never_leaves_its_connection_for_reuse() -> None:
    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, _ = await read_request(reader)
        if first.startswith("GET /slow"):
            await asyncio.sleep(5)  # the client gives up long before
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast")
        await writer.drain()
        await reader.read()

    async def test() -> None:
        async for server in started(slow_then_fast):
            transport = Transport(server.url)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await transport.request("GET", "/slow")
            assert await transport.request("GET", "/fast") == (200, b"fast")
            transport.close()
            assert server.connections == 2

    run(test)


def test_only_http_urls_are_taken() -> None:
    with pytest.raises(ValueError):
        Transport("ftp://example.org")


def test_the_host_header_names_a_port_only_when_it_is_not_the_default() -> None:
    assert Transport("https://example.org")._host_header == "example.org"
    assert Transport("http://example.org:8008")._host_header == "example.org:8008"
    assert Transport("http://[::1]:8008")._host_header == "[::1]:8008"


def test_a_body_cut_off_before_its_length_is_a_disconnect_not_an_answer() -> None:
    async def cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{}")
        await writer.drain()

    async def test() -> None:
        async for server in started(cut_off):
            transport = Transport(server.url)
            with pytest.raises(TransportError):
                await transport.request("GET", "/")
            transport.close()

    run(test)


def test_an_answer_without_end_is_cut_off_at_the_size_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "MAX_ANSWER_BYTES", 64 * 1024)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            await writer.drain()

    async def test() -> None:
        async for server in started(endless):
            transport = Transport(server.url)
            with pytest.raises(TransportError, match="larger than"):
                await transport.request("GET", "/")
            transport.close()

    run(test)

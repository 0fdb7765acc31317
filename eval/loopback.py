"""Keep-alive HTTP/1.1 on loopback, written by hand, for the load generators of the benchmarks
(``eval.bench_server``, ``eval.bench_wechat``): a Python HTTP client library costs more CPU per
request than the server's own work for a cached answer, and on two cores it would measure itself."""

from __future__ import annotations

import asyncio


def http_post(host: str, port: int, target: str, body: bytes, content_type: str = "text/xml") -> bytes:
    """The bytes of one POST request, built beforehand so that the timed loop only sends."""
    head = f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Connection:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length"), 0)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Connections:
    """Idle keep-alive connections to one server, reused; a new one when none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` and read the answer. Raises ``OSError``, ``asyncio.IncompleteReadError``
        or ``ValueError`` on a broken connection (which is closed, not reused)."""
        connection = self.idle.pop() if self.idle else None
        try:
            if connection is not None:
                try:
                    status, body = await connection.post(request)
                except (asyncio.IncompleteReadError, ConnectionResetError) as error:
                    if getattr(error, "partial", b""):
                        raise
                    # The server closed this keep-alive connection while it was idle (uvicorn does
                    # after 5 s): nothing was read, send it again on a new one.
                    connection.close()
                    connection = None
            if connection is None:
                connection = await Connection.open(self.host, self.port)
                status, body = await connection.post(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if connection is not None:
                connection.close()
            raise
        self.idle.append(connection)
        return status, body

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()

"""Raw loopback connections for tests of the serving front: bytes are sent exactly as written (broken
framing included), and answers are read with h11, never parsed by hand."""

from __future__ import annotations

import json
import socket
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

TIMEOUT = 30  # no test waits longer for one answer


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> t.Any:
        return json.loads(self.body)


class RawConnection:
    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, headers: t.Sequence[tuple[str, str]] = (), body: bytes = b"") -> RawAnswer:
        """A well-formed request (framed by h11), then its answer."""
        all_headers = [("Host", "127.0.0.1"), *headers]
        if body:
            all_headers.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=path, headers=all_headers))
        if body:
            data += self.conn.send(h11.Data(data=body))
        self.sock.sendall(data + self.conn.send(h11.EndOfMessage()))
        answer = self.answer()
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return answer

    def answer(self) -> RawAnswer:
        """The next answer on the connection (a request written raw is read as if h11 had sent a GET)."""
        if self.conn.our_state is h11.IDLE:
            self.conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            self.conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        assert response is not None
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        return RawAnswer(response.status_code, headers, b"".join(chunks))

    def closed(self) -> bool:
        """True once the server has closed the connection, reading (and dropping) what it still sends;
        a connection still open after the timeout raises TimeoutError."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

"""``client.http1.Http1Transport`` against real sockets: a raw loopback TCP server that answers
each request with scripted bytes (framings and failures no ASGI server would produce), and the
real service for bodies in both directions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from client import SolverClient, TransportError
from client.http1 import Http1Transport

Answer = Callable[[bytes], "bytes | None"]  # request head -> raw reply (None: close at once)


class RawServer:
    """Accepts connections and answers each request head with ``answer(head)``'s bytes."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.heads.append(head)
                self.bodies.append(buf[:length])
                buf = buf[length:]
                reply = self.answer(head)
                if reply is None:
                    return
                conn.sendall(reply)
                if self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer, close_after: bool = False) -> RawServer:
        servers.append(RawServer(answer, close_after))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fixed(reply: bytes) -> Answer:
    return lambda head: reply


def client_for(server: RawServer, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, transport=Http1Transport(), **kwargs)


def test_content_length_reply_and_keep_alive(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"))
    with client_for(server) as http:
        for _ in range(3):
            response = http.get("/a?x=1")
            assert (response.status_code, response.text) == (200, "hello")
            assert response.headers["content-type"] == "text/plain"
    assert server.connections == 1
    assert server.heads[0].startswith(b"GET /a?x=1 HTTP/1.1\r\n")


def test_chunked_reply_is_reassembled(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"))
    with client_for(server) as http:
        assert http.get("/").content == b"abcdefg"
        assert http.get("/").content == b"abcdefg"
    assert server.connections == 1


def test_connection_close_and_close_delimited_bodies(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"), close_after=True)
    with client_for(server) as http:
        assert http.get("/").content == b"until the end"
        assert http.get("/").content == b"until the end"
    assert server.connections == 2  # nothing reused after "Connection: close"


def test_post_body_arrives_whole_with_its_length(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 204 No Content\r\n\r\n"))
    payload = bytes(range(256)) * 2000  # 512 KB: sent apart from the head
    with client_for(server) as http:
        assert http.post("/up", content=payload).status_code == 204
        assert http.post("/up", content=b"small").status_code == 204
    assert server.bodies == [payload, b"small"]
    assert b"content-length: 512000" in server.heads[0].lower()
    assert server.connections == 1


def test_streamed_upload_is_sent_with_a_length(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    with client_for(server) as http:
        assert http.post("/", content=iter([b"ab", b"cd"])).status_code == 200
    assert server.bodies == [b"abcd"]
    assert b"transfer-encoding" not in server.heads[0].lower()


def test_head_reply_has_no_body(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
    with client_for(server) as http:
        response = http.head("/")
    assert response.status_code == 200
    assert response.content == b""


def test_idle_connection_closed_by_the_server_is_not_reused(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), close_after=True)
    with client_for(server) as http:
        for _ in range(3):  # the server closes after each answer without saying so
            assert http.get("/").text == "ok"
    assert server.connections == 3


def test_disconnect_without_answer_is_a_protocol_error(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(lambda head: None)
    with client_for(server) as http, pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        http.get("/")


def test_truncated_body_is_a_protocol_error(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), close_after=True)
    with client_for(server) as http, pytest.raises(httpx.RemoteProtocolError, match="middle"):
        http.get("/")


def test_garbage_is_a_protocol_error(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(fixed(b"SMTP ready\r\n\r\n"))
    with client_for(server) as http, pytest.raises(httpx.RemoteProtocolError, match="malformed"):
        http.get("/")


def test_read_timeout(raw_server: Callable[..., RawServer]) -> None:
    gate = threading.Event()

    def slow(head: bytes) -> bytes:
        gate.wait(5)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    server = raw_server(slow)
    try:
        with client_for(server, timeout=httpx.Timeout(5.0, read=0.2)) as http, pytest.raises(httpx.ReadTimeout):
            http.get("/")
    finally:
        gate.set()


def test_connect_refused() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with httpx.Client(transport=Http1Transport()) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/")


def test_client_retries_a_dropped_connection(raw_server: Callable[..., RawServer]) -> None:
    """A broken connection surfaces as httpx's error, so the client's retry policy applies."""
    answers = iter([None, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    server = raw_server(lambda head: next(answers))
    with SolverClient(server.url) as client:
        assert client.healthcheck() is True
    assert len(server.heads) == 2


def test_client_reports_a_dead_service_through_the_lean_transport() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    with SolverClient(url) as client, pytest.raises(TransportError, match="cannot connect"):
        client.healthcheck()


def test_solve_against_the_real_service(service: Any) -> None:
    """The lean transport and httpx's own give the same answer from the real service."""
    rng = np.random.default_rng(3)
    q = np.triu(rng.normal(size=(300, 300)))
    answers = []
    for lean in (True, False):
        with SolverClient(service.url, api_key=service.api_key, lean_http=lean) as client:
            result = client.solve(q, "fujitsuDA2", number_iterations=200, number_runs=16,
                                  random_seed=5, transport="compact")
            answers.append((result.best.energy, result.best.state.tolist()))
    assert answers[0] == answers[1]

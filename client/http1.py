"""A lean HTTP/1.1 transport for ``httpx.Client``: keep-alive sockets and httptools' C parser.

httpx's default transport (httpcore + the pure-Python h11 state machine) costs ~0.4-0.9 ms of
client CPU per request on loopback, as much as the trainer's whole mini-batch solve takes on the
service. This transport skips that layer: side by side (``benchmarks/bench_client.py``) an empty
GET takes 1.2-2.1x less client CPU and the trainer's 363 KB solve request 1.35x less.
It speaks plain ``http://`` only (``https://`` goes to httpx's own transport), keeps idle
connections for reuse, honours httpx's connect / read / write timeouts and raises httpx's
exceptions, so the client's retries and error messages work as with the default transport.
Not spoken here: TLS, HTTP/2, proxies (httpx's proxy mounts still take proxied URLs first).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

import httptools
import httpx

__all__ = ["Http1Transport"]

#: Bodies above this are sent after the head in their own send (no concatenated copy).
_JOIN_LIMIT = 64 * 1024
_RECV_BYTES = 256 * 1024
_NO_BODY_STATUS = frozenset({204, 304})


class _Reply:
    """httptools callbacks: the raw headers and the body of one response."""

    __slots__ = ("parser", "headers", "body", "complete", "headers_done", "got_bytes", "keep_alive")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.headers_done = False
        self.got_bytes = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the message is over the parser has reset and always says False.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class _Unanswered(Exception):
    """The connection broke before a byte of the answer arrived (carries httpx's error)."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    __slots__ = ("sock", "idle_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0

    def is_usable(self, keepalive_expiry: float) -> bool:
        """Idle not too long, and nothing to read: a readable idle socket means the server
        closed it (EOF) or sent something unasked; either way it cannot carry a request."""
        if time.monotonic() - self.idle_since > keepalive_expiry:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Http1Transport(httpx.BaseTransport):
    """``httpx.Client(transport=Http1Transport())``: see the module docstring.

    Args:
        max_keepalive: idle connections kept per (host, port).
        keepalive_expiry: seconds an idle connection is kept (uvicorn closes its side after 5).
        fallback: the transport for https; default ``httpx.HTTPTransport()``.
    """

    def __init__(self, max_keepalive: int = 10, keepalive_expiry: float = 4.0,
                 fallback: httpx.BaseTransport | None = None) -> None:
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self._fallback = fallback
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- httpx API ---------------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            return self._fallback_transport().handle_request(request)
        timeouts = request.extensions.get("timeout", {})
        address = (url.host, url.port or 80)
        body = request.read()
        head = self._head(request, len(body))
        while True:
            conn, reused = self._checkout(address, timeouts.get("connect"))
            keep = False
            try:
                self._send(conn.sock, head, body, timeouts.get("write"), request)
                status, headers, content, keep = self._receive(conn.sock, request, timeouts.get("read"))
                break
            except _Unanswered as exc:
                # A kept connection the server closed as we reused it (reset, or EOF before a
                # byte of answer) never carried the request to the application: send it again on
                # a new connection, as browsers do. On a fresh connection it is the caller's error.
                if not reused:
                    raise exc.error from exc.__cause__
            finally:
                if keep:
                    self._checkin(address, conn)
                else:
                    conn.close()
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content),
                              extensions={"http_version": b"HTTP/1.1"})

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
        if self._fallback is not None:
            self._fallback.close()

    # -- connections -----------------------------------------------------------------------------
    def _fallback_transport(self) -> httpx.BaseTransport:
        if self._fallback is None:
            self._fallback = httpx.HTTPTransport()
        return self._fallback

    def _checkout(self, address: tuple[str, int], connect_timeout: float | None) -> tuple[_Connection, bool]:
        """A connection to ``address``, and whether it is a kept one."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            conns = self._idle.get(address, [])
            while conns:
                conn = conns.pop()
                if conn.is_usable(self.keepalive_expiry):
                    return conn, True
                conn.close()
        try:
            sock = socket.create_connection(address, timeout=connect_timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {address[0]}:{address[1]} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        # Small requests must not wait for the ACK of the previous segment (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock), False

    def _checkin(self, address: tuple[str, int], conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            conns = self._idle.setdefault(address, [])
            if not self._closed and len(conns) < self.max_keepalive:
                conns.append(conn)
                return
        conn.close()

    # -- the exchange ----------------------------------------------------------------------------
    @staticmethod
    def _head(request: httpx.Request, body_size: int) -> bytes:
        lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
        for name, value in request.headers.raw:
            # The body was read whole: it goes with its length, never chunked.
            if name.lower() not in (b"content-length", b"transfer-encoding"):
                lines.append(name + b": " + value)
        if body_size or request.method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(body_size).encode("ascii"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    @staticmethod
    def _send(sock: socket.socket, head: bytes, body: bytes, timeout: float | None,
              request: httpx.Request) -> None:
        try:
            sock.settimeout(timeout)
            if len(body) <= _JOIN_LIMIT:
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                sock.sendall(memoryview(body))
        except TimeoutError as exc:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from exc
        except OSError as exc:
            raise _Unanswered(httpx.WriteError(f"sending the request failed: {exc}",
                                               request=request)) from exc

    @staticmethod
    def _receive(sock: socket.socket, request: httpx.Request, timeout: float | None
                 ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        reply = _Reply()
        parser = reply.parser
        head_only = request.method == "HEAD"
        try:
            sock.settimeout(timeout)
            while not reply.complete:
                data = sock.recv(_RECV_BYTES)
                if not data:
                    return Http1Transport._at_eof(reply, request)
                reply.got_bytes = True
                parser.feed_data(data)
                if reply.headers_done and (head_only or parser.get_status_code() in _NO_BODY_STATUS):
                    break
        except TimeoutError as exc:
            raise httpx.ReadTimeout("no answer within the read timeout", request=request) from exc
        except httptools.HttpParserUpgrade as exc:
            raise httpx.RemoteProtocolError("the server switched protocols", request=request) from exc
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"malformed HTTP response: {exc}", request=request) from exc
        except OSError as exc:
            error = httpx.ReadError(f"reading the response failed: {exc}", request=request)
            if reply.got_bytes:
                raise error from exc
            raise _Unanswered(error) from exc
        keep = reply.keep_alive and reply.complete and not head_only
        return parser.get_status_code(), reply.headers, b"".join(reply.body), keep

    @staticmethod
    def _at_eof(reply: _Reply, request: httpx.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """The server closed the connection: the end of a close-delimited body, or an error."""
        framed = any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in reply.headers)
        if reply.headers_done and not framed:
            return reply.parser.get_status_code(), reply.headers, b"".join(reply.body), False
        if not reply.got_bytes:
            raise _Unanswered(httpx.RemoteProtocolError(
                "the server disconnected without sending a response", request=request))
        raise httpx.RemoteProtocolError("the server closed the connection in the middle of a response",
                                        request=request)

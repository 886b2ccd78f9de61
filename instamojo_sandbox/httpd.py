"""The sandbox's HTTP/1.1 server: a strict, bounded request parser and a thread per connection.

Why by hand: ``http.server.BaseHTTPRequestHandler`` parses headers with the e-mail package,
which costs more than serving a pre-serialized page, and its limits are loose (it trusts a
negative ``Content-Length``, waits forever for a client that stops mid-request). A benchmark
makes thousands of requests per second on keep-alive connections; a fuzzer sends garbage. Both
are served here from one loop over a socket and a byte buffer.

Every request either gets an answer or a closed connection, in bounded time (RFC 9112 is the
grammar; ``Limits`` are the bounds):

===============================================  ==========================================
input                                            answer (then the connection is closed)
===============================================  ==========================================
request line longer than ``max_request_line``    414
header line longer than ``max_header_line``,     431
more than ``max_headers`` headers, or a head
longer than ``max_head``
a request line that is not ``METHOD SP target    400
SP HTTP/x.y``; a method that is not a token; a
target with spaces, controls, non-ASCII bytes
or a fragment; bare CR; obs-fold; a header name
that is not a token or has space before the
colon; a control byte in a header value; no (or
two) ``Host`` in HTTP/1.1
a version other than HTTP/1.x (``HTTP/2.0``)    505
``Content-Length`` not digits, negative, or two  400
different values (equal repeats are one value)
``Content-Length`` above ``max_body``            413
``Transfer-Encoding`` (with ``Content-Length``:  411 (400)
400: a smuggling attempt)
the head or body not whole ``request_timeout``   408
seconds after its first byte
a client that disconnects mid-request, or is     closed, no answer
idle for ``idle_timeout`` between requests
more than ``max_connections`` connections        503 to the newcomer
===============================================  ==========================================

A method the API does not serve (``BREW``, ``HEAD``) gets 405 after its body is read, and the
connection stays open. Error answers are JSON ``{"detail": "..."}``. After an error the
server stops writing and reads (and drops) what the client still sends for a moment before it
closes, so the client reads the answer instead of a reset.

Timeouts are the kernel's (``SO_RCVTIMEO``/``SO_SNDTIMEO`` on a blocking socket), not Python's
socket timeouts, which poll() before every read and write.
"""

from __future__ import annotations

import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl

from .api import Request, Response, json_response

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_BAD_TARGET = re.compile(rb"[^\x21-\x7e]|#")  # visible ASCII only, no fragment
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls but HTAB (obs-text is allowed)
_DIGITS = re.compile(r"[0-9]+")
#: methods the sandbox serves (admin: POST, PATCH, DELETE; the API answers 405 to all but GET)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_RECV = 65536


@dataclass(frozen=True)
class Limits:
    """Bounds on what a client may send (see the module docstring for the answers)."""

    max_request_line: int = 65536
    max_header_line: int = 16384
    max_headers: int = 100
    max_head: int = 65536 + 65536
    max_body: int = 1 << 20
    #: seconds a keep-alive connection may sit idle between requests before it is closed
    idle_timeout: float = 60.0
    #: seconds a request may take to arrive whole (head and body) once its first byte is in
    request_timeout: float = 10.0
    #: seconds an answer may take to leave (a client that does not read is dropped)
    send_timeout: float = 60.0
    #: open connections at once (each has a thread); beyond it, 503 and close
    max_connections: int = 1024


class HttpError(Exception):
    """A request that cannot be served: answered with ``status`` and closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Closed(Exception):
    """The client went away (or stayed idle too long): close without an answer."""


class Headers(dict):
    """Request headers, keys lower-cased; ``get`` is case-insensitive."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


_date_cache: tuple[int, str] = (0, "")  # (second, its Date header)


def http_date() -> str:
    """The Date header's value (cached for the current second)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def parse_head(head: bytes, limits: Limits) -> tuple[str, str, str, Headers, int, bool]:
    """Parse a request head (request line and header lines, without the blank line).

    Returns (method, target, version, headers, content length, keep-alive?); raises
    :class:`HttpError` for anything RFC 9112 does not allow (see the module docstring).
    """
    lines = head.split(b"\n")
    request_line = lines[0][:-1] if lines[0].endswith(b"\r") else lines[0]
    if len(request_line) > limits.max_request_line:
        raise HttpError(414, "Request line too long.")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not all(parts) or b"\r" in request_line:
        raise HttpError(400, "Bad request line.")
    raw_method, raw_target, raw_version = parts
    if not _TOKEN.fullmatch(raw_method):
        raise HttpError(400, "Bad request method.")
    version = _VERSION.fullmatch(raw_version)
    if version is None:
        raise HttpError(400, "Bad HTTP version.")
    if version.group(1) != b"1":
        raise HttpError(505, "Only HTTP/1.0 and HTTP/1.1 are served.")
    if _BAD_TARGET.search(raw_target):
        raise HttpError(400, "Bad request target.")
    if raw_target.startswith((b"http://", b"https://")):  # absolute-form: keep the path
        slash = raw_target.find(b"/", raw_target.index(b"//") + 2)
        raw_target = raw_target[slash:] if slash >= 0 else b"/"
    elif not raw_target.startswith(b"/"):
        raise HttpError(400, "Bad request target.")
    headers = Headers()
    lengths: list[str] = []
    hosts = 0
    n = 0
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            continue
        if len(line) > limits.max_header_line:
            raise HttpError(431, "Header line too long.")
        n += 1
        if n > limits.max_headers:
            raise HttpError(431, "Too many headers.")
        if line[0] in (0x20, 0x09):
            raise HttpError(400, "Folded header lines are not accepted.")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError(400, "Bad header line.")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise HttpError(400, "Bad header value.")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        if key == "content-length":
            lengths.extend(v.strip() for v in text.split(","))
        elif key == "host":
            hosts += 1
        if key in headers:
            headers[key] = f"{headers[key]}, {text}"  # RFC 9110 §5.3: one list
        else:
            headers[key] = text
    http11 = version.group(2) != b"0"
    if http11 and hosts != 1:
        raise HttpError(400, "An HTTP/1.1 request needs exactly one Host header.")
    if hosts > 1:
        raise HttpError(400, "More than one Host header.")
    length = 0
    if lengths:
        if not all(_DIGITS.fullmatch(v) for v in lengths):
            raise HttpError(400, "Bad Content-Length.")
        if len({v.lstrip("0") for v in lengths}) > 1:
            raise HttpError(400, "Conflicting Content-Length values.")
        if len(lengths[0].lstrip("0")) > 18:
            raise HttpError(413, "Request body too large.")
        length = int(lengths[0])
    if "transfer-encoding" in headers:
        if lengths:
            raise HttpError(400, "Transfer-Encoding and Content-Length together.")
        raise HttpError(411, "Send the body with a Content-Length.")
    if length > limits.max_body:
        raise HttpError(413, "Request body too large.")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)
    return (raw_method.decode("ascii"), raw_target.decode("ascii"), raw_version.decode("ascii"), headers, length,
            keep_alive)


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (never zero: zero means no timeout)."""
    micros = max(1, round(seconds * 1_000_000))
    return struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)


def _find_head_end(buf: bytearray, start: int) -> tuple[int, int]:
    """(end of the head, start of the body) of the first blank line at or after ``start``, or
    (-1, -1). Lines end with CRLF or a bare LF (RFC 9112 §2.2)."""
    i = buf.find(b"\n", start)
    while i >= 0:
        j = i + 1
        if buf.startswith(b"\r\n", j):
            return i, j + 2
        if buf.startswith(b"\n", j):
            return i, j + 1
        i = buf.find(b"\n", j)
    return -1, -1


class Handler(socketserver.BaseRequestHandler):
    """One connection: read a request, answer it, repeat while the connection is kept alive."""

    server: Server

    def setup(self) -> None:
        self.sock: socket.socket = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.limits = self.server.limits
        # Kernel timeouts on a blocking socket, not Python's socket timeouts: those poll() before
        # every recv and send, a syscall per call on the path of every request. A request that
        # arrives in one read (nearly all) costs one recv and one send.
        self._recv_timeout = -1.0
        self._set_recv_timeout(self.limits.idle_timeout)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.limits.send_timeout))

    def _set_recv_timeout(self, seconds: float) -> None:
        if seconds != self._recv_timeout:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
            self._recv_timeout = seconds

    def handle(self) -> None:
        sandbox = self.server.sandbox
        client_ip = self.client_address[0] if isinstance(self.client_address, tuple) else ""
        while True:
            try:
                method, target, headers, body, keep_alive = self._read_request()
            except _Closed:
                return
            except HttpError as err:
                self._answer_error(err)
                return
            if method not in METHODS:
                resp = json_response(405, {"detail": f'Method "{method}" not allowed.'},
                                     [("Allow", "GET, POST, PUT, PATCH, DELETE")])
            else:
                path, _, qs = target.partition("?")
                req = Request(method, path, parse_qsl(qs, keep_blank_values=True) if qs else [], headers, body,
                              client_ip)
                try:
                    resp = sandbox.handle(req)
                except Exception as err:  # noqa: BLE001 - a bug must not kill the connection thread silently
                    resp = json_response(500, {"detail": f"sandbox error: {type(err).__name__}: {err}"})
            if not self._send(resp, keep_alive) or not keep_alive:
                return

    # Reading ------------------------------------------------------------------------------
    def _recv(self, deadline: float | None, started: bool) -> None:
        """Receive more bytes into the buffer before ``deadline`` (None: within the idle timeout,
        waiting for a new request). A timeout mid-request is a 408; a timeout between requests,
        a reset or an end of stream closes quietly."""
        if deadline is None:
            self._set_recv_timeout(self.limits.idle_timeout)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if started:
                    raise HttpError(408, "The request did not arrive in time.")
                raise _Closed
            self._set_recv_timeout(remaining)
        try:
            data = self.sock.recv(_RECV)
        except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO expired: EAGAIN
            if started:
                raise HttpError(408, "The request did not arrive in time.") from None
            raise _Closed from None
        except OSError:
            raise _Closed from None
        if not data:
            raise _Closed
        self.buf += data

    def _read_request(self):
        limits = self.limits
        buf = self.buf
        deadline: float | None = None  # the first read waits for the idle timeout
        started = False
        scanned = 0
        while True:
            if not started:
                if buf.startswith((b"\r\n", b"\n")):  # RFC 9112 §2.2: empty lines before a request
                    while buf.startswith((b"\r\n", b"\n")):
                        del buf[: 2 if buf[0] == 0x0D else 1]
                    if deadline is None:  # only blank lines so far: the idle timeout still runs
                        deadline = time.monotonic() + limits.idle_timeout
                if buf:
                    started = True
                    deadline = time.monotonic() + limits.request_timeout
            end, body_start = _find_head_end(buf, max(0, scanned - 2))
            if end >= 0:
                break
            scanned = len(buf)
            newline = buf.find(b"\n")
            if newline < 0:
                if len(buf) > limits.max_request_line:
                    raise HttpError(414, "Request line too long.")
            elif len(buf) - buf.rfind(b"\n") - 1 > limits.max_header_line:
                raise HttpError(431, "Header line too long.")
            if len(buf) > limits.max_head:
                raise HttpError(431, "Request head too large.")
            self._recv(deadline, started)
        if end > limits.max_head:
            raise HttpError(431, "Request head too large.")
        method, target, _version, headers, length, keep_alive = parse_head(bytes(buf[:end]), limits)
        if length:
            if len(buf) - body_start < length and headers.get("expect", "").lower() == "100-continue":
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")  # what curl waits for before a large body
            while len(buf) - body_start < length:
                self._recv(deadline, True)
        body = bytes(buf[body_start:body_start + length])
        del buf[:body_start + length]  # what is left is the start of the next (pipelined) request
        return method, target, headers, body, keep_alive

    # Writing ------------------------------------------------------------------------------
    def _write(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _answer_error(self, err: HttpError) -> None:
        """Answer a request that cannot be served, then close without resetting the client."""
        resp = json_response(err.status, {"detail": err.message})
        if self._send(resp, keep_alive=False):
            self._lingering_close()

    def _lingering_close(self, seconds: float = 1.0, most: int = 1 << 20) -> None:
        # Stop writing, then read and drop what the client still sends (for a moment): closing
        # with unread data would reset the connection and the client might lose the answer.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            drained = 0
            while drained < most:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(_RECV)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _send(self, resp: Response, keep_alive: bool) -> bool:
        """Write one response; False if the connection is no longer usable."""
        if resp.delay:
            time.sleep(resp.delay)
        fault = resp.fault
        parts = resp.parts
        if fault in ("malformed", "drop"):
            body = resp.body
            parts = (body[: max(1, len(body) // 2)],) if fault == "malformed" else (body,)
        length = sum(len(p) for p in parts)
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
            f"Server: {self.server.server_version}",
            f"Date: {http_date()}",
            f"Content-Length: {length}",
        ]
        for name, value in resp.headers:
            lines.append(f"{name}: {value}")
        if fault:
            lines.append(f"X-Sandbox-Fault: {fault}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = self.sock
        try:
            if fault == "drop":
                # the headers promise the whole body; half of it arrives, then the connection dies
                sock.sendall(head + parts[0][: length // 2])
                sock.shutdown(socket.SHUT_RDWR)
                return False
            buffers = (head, *parts)
            sent = sock.sendmsg(buffers)  # one gathered write: no copy of the page
            total = len(head) + length
            if sent < total:
                sock.sendall(b"".join(buffers)[sent:])
        except OSError:
            return False
        return True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threading TCP server (one daemon thread per connection) that knows its open
    connections, so that stopping it closes them, and refuses connections beyond the limit."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 512
    server_version = "InstamojoSandbox/1.0"

    def __init__(self, address, sandbox, limits: Limits):
        self.sandbox = sandbox
        self.limits = limits
        #: exceptions that escaped a connection's handler (a bug: tests check it stays 0)
        self.handler_errors = 0
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            full = len(self._conns) >= self.limits.max_connections
            if not full:
                self._conns.add(request)
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 40\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                                b'{"detail": "Too many open connections."}')
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """Count (and print, as socketserver does) an exception that escaped a handler."""
        with self._conns_lock:
            self.handler_errors += 1
        super().handle_error(request, client_address)

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        with self._conns_lock:
            return len(self._conns)

    def close_connections(self) -> None:
        """Close every open keep-alive connection (so handler threads end with the server)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

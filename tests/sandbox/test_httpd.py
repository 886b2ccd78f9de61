"""The HTTP request parser under hostile input, over raw sockets: every malformed request gets
a 4xx answer (505 for a version the server does not speak) or a closed connection, in bounded
time, while other clients are served. No timing is asserted: deadlines only bound the waits."""

from __future__ import annotations

import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from instamojo_sandbox import Sandbox, SandboxConfig

#: generous bound on any one wait (the server's own timeouts are a fraction of a second here)
WAIT = 20.0


@pytest.fixture(scope="module")
def sb():
    config = SandboxConfig(seed=2, profile="small", merchants=1, days=2, request_timeout=0.4, idle_timeout=0.6)
    with Sandbox(config) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def token(sb) -> str:
    return sb.issue_tokens(sb.merchants[0])["access_token"]


def exchange(sb, data: bytes, *, half_close: bool = False, pause: float | None = None) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection and read until the server closes it (or WAIT passes).
    Returns (everything received, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:
        try:
            s.sendall(data)
            if pause:
                time.sleep(pause)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close while the client still sends (a request line too long)
        received = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return received, False
            except OSError:
                return received, True  # reset: closed
            if not chunk:
                return received, True
            received += chunk
        return received, False


def statuses(received: bytes) -> list[int]:
    """The status codes of the responses in ``received`` (headers and bodies skipped)."""
    out = []
    rest = received
    while rest.startswith(b"HTTP/1.1 "):
        head, _, rest = rest.partition(b"\r\n\r\n")
        out.append(int(head[9:12]))
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        rest = rest[length:]
    return out


def answer(sb, data: bytes, **kwargs) -> int | None:
    """The status of the one answer to ``data`` (None: closed without an answer). Asserts the
    server closed the connection afterwards."""
    received, closed = exchange(sb, data, **kwargs)
    assert closed, f"the connection stayed open: {received[:200]!r}"
    codes = statuses(received)
    assert len(codes) <= 1, codes
    return codes[0] if codes else None


def ok(sb) -> None:
    """A normal request on a fresh connection is served."""
    assert requests.get(sb.url("/_sandbox/clock"), timeout=WAIT).status_code == 200


GOOD = b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n"


def test_a_plain_request_and_keep_alive(sb):
    assert answer(sb, GOOD) == 200
    two = b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\n\r\n" + GOOD  # pipelined, answered in order
    received, closed = exchange(sb, two)
    assert statuses(received) == [200, 200] and closed


@pytest.mark.parametrize("line", [
    b"garbage", b"GET /_sandbox/clock", b"GET  /_sandbox/clock HTTP/1.1", b"GET /_sandbox/clock HTTP/1.1 extra",
    b" GET /_sandbox/clock HTTP/1.1", b"GET /_sandbox/ clock HTTP/1.1", b"G\x00T /_sandbox/clock HTTP/1.1",
    b"GET _sandbox/clock HTTP/1.1", b"GET /_sandbox/clock#frag HTTP/1.1", b"GET /_sandbox/clock\r HTTP/1.1",
    b"GET /_sandbox/clock HTTP/1", b"GET /_sandbox/clock HTTX/1.1", b"GET /_sandbox/clock HTTP/1.1.1",
    b"GET /_sandbox/clock http/1.1", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
])
def test_malformed_request_lines_are_400(sb, line):
    assert answer(sb, line + b"\r\nHost: sandbox\r\n\r\n") == 400
    ok(sb)


@pytest.mark.parametrize("version,status", [(b"HTTP/2.0", 505), (b"HTTP/3.0", 505), (b"HTTP/0.9", 505)])
def test_versions_the_server_does_not_speak(sb, version, status):
    assert answer(sb, b"GET /_sandbox/clock " + version + b"\r\nHost: sandbox\r\n\r\n") == status


def test_http_1_0_and_minor_versions(sb):
    assert answer(sb, b"GET /_sandbox/clock HTTP/1.0\r\n\r\n") == 200  # no Host needed, closes after
    assert answer(sb, b"GET /_sandbox/clock HTTP/1.9\r\nHost: sandbox\r\nConnection: close\r\n\r\n") == 200


def test_unknown_methods_are_405_and_the_connection_stays_usable(sb):
    received, closed = exchange(sb, b"BREW /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 3\r\n\r\n"
                                    b"tea" + GOOD)
    assert statuses(received) == [405, 200] and closed
    assert answer(sb, b"HEAD /v2/payments/ HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n") == 405


def test_huge_request_line_header_line_and_head(sb):
    assert answer(sb, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: sandbox\r\n\r\n") == 414
    assert answer(sb, b"GET /" + b"a" * 200_000) == 414  # no newline at all, still arriving
    assert answer(sb, b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n") == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    assert answer(sb, b"GET / HTTP/1.1\r\nHost: sandbox\r\n" + many + b"\r\n") == 431
    big = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 8000) for i in range(20))  # under 100 lines, over 128 KiB
    assert answer(sb, b"GET / HTTP/1.1\r\nHost: sandbox\r\n" + big + b"\r\n") == 431
    assert answer(sb, b"GET / HTTP/1.1\r\nHost: sandbox\r\n" + big) == 431  # a head that never ends
    ok(sb)


@pytest.mark.parametrize("headers,status", [
    (b"Content-Length: -1\r\n", 400),
    (b"Content-Length: abc\r\n", 400),
    (b"Content-Length: 1e3\r\n", 400),
    (b"Content-Length: +5\r\n", 400),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    (b"Content-Length: 5, 6\r\n", 400),
    (b"Content-Length: 99999999999999999999999999\r\n", 413),
    (b"Content-Length: 2000000\r\n", 413),
    (b"Transfer-Encoding: chunked\r\n", 411),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
])
def test_bad_content_lengths(sb, headers, status):
    assert answer(sb, b"POST /_sandbox/stats/reset HTTP/1.1\r\nHost: sandbox\r\n" + headers + b"\r\nhello") == status
    ok(sb)


def test_equal_repeated_content_lengths_are_one(sb):
    req = (b"POST /_sandbox/stats/reset HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 2\r\nContent-Length: 02\r\n"
           b"Content-Type: application/json\r\nConnection: close\r\n\r\n{}")
    assert answer(sb, req) == 200


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-Space : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nno colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-Fold: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-Nul: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-CR: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: sandbox\r\nX-\xe9: a\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: sandbox\r\n\r\n",
])
def test_bad_headers_and_non_ascii_bytes(sb, head):
    assert answer(sb, head) == 400
    ok(sb)


def test_lenient_where_the_rfc_allows(sb):
    assert answer(sb, b"\r\n\r\nGET /_sandbox/clock HTTP/1.1\nHost: sandbox\nConnection: close\n\n") == 200
    assert answer(sb, b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\nX-Obs: caf\xe9\r\nConnection: close"
                      b"\r\n\r\n") == 200  # obs-text in a value
    assert answer(sb, b"GET http://sandbox/_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\nConnection: close"
                      b"\r\n\r\n") == 200  # absolute-form
    with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:  # curl's large uploads
        s.sendall(b"POST /_sandbox/stats/reset HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 2\r\n"
                  b"Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"{}")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert statuses(received) == [200]


def test_a_client_that_stops_mid_request_gets_408_while_others_are_served(sb):
    results: dict[str, int | None] = {}

    def stalled(name: str, data: bytes) -> None:
        results[name] = answer(sb, data)

    threads = [threading.Thread(target=stalled, args=(name, data)) for name, data in (
        ("head", b"GET /_sandbox/clock HTTP/1.1\r\nHost: sand"),
        ("body", b"POST /_sandbox/stats/reset HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 10\r\n\r\nhalf"),
        ("line", b"GET /_sand"),
    )]
    for t in threads:
        t.start()
    ok(sb)  # served at once, beside the stalled connections
    for t in threads:
        t.join(WAIT * 2)
    assert results == {"head": 408, "body": 408, "line": 408}


def test_a_slow_drip_is_cut_off_at_the_request_deadline(sb):
    with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:
        received = b""
        deadline = time.monotonic() + WAIT
        for byte in GOOD * 50:  # a byte every 20 ms: each read is quick, the whole request is not
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.02)
            if time.monotonic() > deadline:
                break
        try:
            while chunk := s.recv(65536):
                received += chunk
        except OSError:
            pass
    assert statuses(received)[-1:] == [408]


def test_disconnecting_mid_request_leaves_no_connection_behind(sb):
    for data in (b"POST /_sandbox/stats/reset HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 100\r\n\r\nabc",
                 b"GET /_sandbox/clock HTTP/1.1\r\nHost:", b"G"):
        assert answer(sb, data, half_close=True) is None  # closed quietly
        with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:
            s.sendall(data)  # and a hard close
    ok(sb)
    _wait_for_no_connections(sb)


def test_an_idle_keep_alive_connection_is_closed_quietly(sb):
    with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:
        s.sendall(b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert statuses(received) == [200]  # answered, then closed after the idle timeout


def test_blank_lines_forever_do_not_keep_a_connection_open(sb):
    closed = False
    with socket.create_connection(("127.0.0.1", sb.port), timeout=WAIT) as s:
        s.settimeout(0.15)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not closed:
            try:
                s.sendall(b"\r\n")  # RFC 9112 lets a server ignore these, not wait on them forever
                closed = s.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
    assert closed


def test_connections_beyond_the_limit_get_503():
    with Sandbox(SandboxConfig(profile="small", merchants=1, days=1, max_connections=2)) as small:
        held = [socket.create_connection(("127.0.0.1", small.port), timeout=WAIT) for _ in range(2)]
        try:
            for s in held:  # make sure both are accepted and served
                s.sendall(b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 200")
            assert answer(small, GOOD) == 503
        finally:
            for s in held:
                s.close()
        _wait_for_no_connections(small)
        assert answer(small, GOOD) == 200


def _wait_for_no_connections(sandbox) -> None:
    deadline = time.monotonic() + WAIT
    while sandbox._server.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox._server.open_connections == 0


# Fuzz -----------------------------------------------------------------------------------------
def _bases(token: str) -> list[bytes]:
    form = b"grant_type=refresh_token&refresh_token=nope&client_id=x&client_secret=y"
    return [
        b"GET /v2/payments/?page=2&limit=5 HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer "
        + token.encode() + b"\r\nAccept: */*\r\n\r\n",
        b"GET /_sandbox/clock HTTP/1.1\r\nHost: sandbox\r\nUser-Agent: fuzz\r\nConnection: keep-alive\r\n\r\n",
        b"POST /oauth2/token/ HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(form) + form,
        b"GET /v2/user-info/ HTTP/1.0\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n",
    ]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random edits of a valid request."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(9)
        pos = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip a byte to anything
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:  # insert random bytes
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:  # delete a slice
            del out[pos:pos + rng.randint(1, 12)]
        elif kind == 3:  # truncate
            del out[pos:]
        elif kind == 4:  # duplicate a line
            lines = bytes(out).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            out = bytearray(b"\r\n".join(lines))
        elif kind == 5:  # a hostile Content-Length
            value = rng.choice([b"-1", b"abc", b"99999999999999999999", b"0", b"7", b"3, 4", b" ", b"1048577"])
            out[pos:pos] = b"\r\nContent-Length: " + value
        elif kind == 6:  # a long run of one byte
            out[pos:pos] = bytes([rng.choice(b"aA /:\r\n\x00\xff")]) * rng.choice([100, 20_000, 140_000])
        elif kind == 7:  # line endings
            out = bytearray(bytes(out).replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]), 1))
        else:  # another method or version
            word = rng.choice([b"BREW", b"HEAD", b"get", b"HTTP/2.0", b"HTTP/1.2", b"\xc3\xa9", b"CONNECT"])
            out[pos:pos] = word
    return bytes(out)


def test_fuzzed_requests_end_in_an_answer_or_a_close_and_the_server_keeps_serving(sb, token):
    rng = random.Random(20241118)
    cases = []
    for _ in range(300):
        base = rng.choice(_bases(token))
        cases.append((mutate(rng, base), rng.random() < 0.5))

    def run(case: tuple[bytes, bool]) -> tuple[bytes, bytes, bool]:
        data, half_close = case
        received, closed = exchange(sb, data, half_close=half_close)
        return data, received, closed

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(run, cases))
    for data, received, closed in results:
        assert closed, f"not closed in {WAIT} s: {data[:120]!r}"
        codes = statuses(received)
        assert received == b"" or codes, f"not an HTTP answer: {received[:120]!r} to {data[:120]!r}"
        assert all(c < 500 or c == 505 for c in codes), f"{codes} to {data[:200]!r}"
    answered = [statuses(r) for _, r, _ in results]
    assert sum(1 for a in answered if any(400 <= c < 500 for c in a)) > 100  # most mutations are refused
    ok(sb)
    _wait_for_no_connections(sb)
    assert sb.request_count(status=500) == 0
    assert sb._server.handler_errors == 0  # no exception escaped a connection's handler

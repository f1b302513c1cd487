"""Hostile input, one test each: every answer is a 4xx in the DA envelope, quickly, and the
server stays small and keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.reliability.conftest import (KEY_A, KEY_C, check_answer, clean_up, client_for, rss_mib,
                                        small_job)
from tests.service.conftest import ServerProcess

PART = "hostile"
SOLVE = "/v2/qubo/solve"


def _post(client: httpx.Client, path: str, content: bytes, content_type: str | None = "application/json"
          ) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return check_answer(client.post(path, content=content, headers=headers), PART)


def test_malformed_json_is_a_400(keyed_server: ServerProcess) -> None:
    bodies = [b"{", b'{"a":', b"nul", b"\xff\xfe{}", b"[]", b'"text"', b"123", b"{'c': 1}",
              b'{"binary_polynomial": {"terms": [}]}', b"\x00" * 64, b'{"a":1}{"b":2}']
    with client_for(keyed_server) as c:
        for body in bodies:
            for path in (SOLVE, "/v3/async/qubo/solve", "/v2/async/jobs/cancel"):
                r = _post(c, path, body)
                assert r.status_code == 400, (path, body, r.text)


def test_truncated_json_is_a_400(keyed_server: ServerProcess) -> None:
    raw = orjson.dumps(small_job(8))
    with client_for(keyed_server) as c:
        for cut in range(1, len(raw), max(1, len(raw) // 40)):
            r = _post(c, SOLVE, raw[:cut])
            assert r.status_code == 400 and "JSON" in r.json()["error"]["message"], (cut, r.text)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_wrong_content_type_is_a_415(keyed_server: ServerProcess, content_type: str) -> None:
    raw = orjson.dumps(small_job(4))
    with client_for(keyed_server) as c:
        for path in (SOLVE, "/v2/async/qubo/solve", "/spinout/v1/solve"):
            r = _post(c, path, raw, content_type)
            assert r.status_code == 415 and "Content-Type" in r.json()["error"]["message"], r.text
        ok = _post(c, SOLVE, raw, "application/json; charset=utf-8")
        assert ok.status_code == 200 and ok.json()["status"] == "Done"


def _gigabyte(sent: list[int], chunk: int = 1024 * 1024) -> Iterator[bytes]:
    block = b" " * chunk
    for _ in range(1024):  # 1 GiB, never held in memory
        sent[0] += chunk
        yield block


def test_gigabyte_streamed_body_is_refused_at_the_limit(keyed_server: ServerProcess) -> None:
    """A chunked 1 GiB body (no Content-Length): 413 once the 4 MiB cap is passed; the server
    reads little more than the cap and its memory stays flat."""
    assert keyed_server.proc is not None
    before = rss_mib(keyed_server.proc.pid)
    sent = [0]
    started = time.monotonic()
    with client_for(keyed_server, timeout=60) as c:
        try:
            r = c.post("/v2/async/qubo/solve", content=_gigabyte(sent),
                       headers={"Content-Type": "application/json"})
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            r = None  # the server answered 413 and closed while we were still writing
        if r is not None:
            check_answer(r, PART)
            assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
        else:
            TALLY_413()
    elapsed = time.monotonic() - started
    growth = rss_mib(keyed_server.proc.pid) - before
    assert sent[0] < 64 * 1024 * 1024, f"the client got to send {sent[0]:,} bytes"
    assert growth < 48, f"server RSS grew by {growth:.0f} MiB"
    assert elapsed < 30
    with client_for(keyed_server) as c:  # still serving
        assert c.get("/v1/healthcheck").status_code == 200


def TALLY_413() -> None:  # noqa: N802  (a refused write counts as the 413 it was)
    from tests.reliability.conftest import TALLY

    TALLY.record(PART, 413)


def test_gigabyte_declared_body_is_refused_before_reading(keyed_server: ServerProcess) -> None:
    """Content-Length: 1 GiB and only a few bytes sent: the 413 comes at once, unread."""
    import socket

    with socket.create_connection(("127.0.0.1", keyed_server.port or 0), timeout=10) as sock:
        sock.sendall(f"POST {SOLVE} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY_A}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {1024**3}\r\n\r\n{{".encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    TALLY_RECORD(status)
    assert status == 413 and b"connection: close" in head.lower()
    assert orjson.loads(body)["error"]["code"] == 413


def TALLY_RECORD(status: int) -> None:  # noqa: N802
    from tests.reliability.conftest import TALLY

    TALLY.record(PART, status)


def test_ten_million_terms_are_refused_by_the_terms_cap(open_server: ServerProcess) -> None:
    """80 MB of ``{"c":1}`` terms fit the 100 MiB body cap; the 2,000,000-term cap refuses them
    before they become Python objects (quick, no memory spike)."""
    assert open_server.proc is not None
    body = b'{"fujitsuDA2":{},"binary_polynomial":{"terms":[' + b'{"c":1},' * (10**7 - 1) + b'{"c":1}]}}'
    before = rss_mib(open_server.proc.pid)
    started = time.monotonic()
    with client_for(open_server, key=None, timeout=60) as c:
        r = _post(c, SOLVE, body)
    elapsed = time.monotonic() - started
    assert r.status_code == 400 and "10,000,000 terms" in r.json()["error"]["message"], r.text
    assert elapsed < 10, elapsed
    assert rss_mib(open_server.proc.pid) - before < 400  # the body itself, not 3 GB of dicts


@pytest.mark.parametrize("index", [2**63, 2**63 - 1, 2**64, -(2**63), 10**30])
def test_huge_indices_are_a_400(keyed_server: ServerProcess, index: int) -> None:
    raw = b'{"fujitsuDA2":{},"binary_polynomial":{"terms":[{"c":1,"p":[0,%d]}]}}' % index
    with client_for(keyed_server) as c:
        for path in (SOLVE, "/v3/async/qubo/solve"):
            body = raw.replace(b"fujitsuDA2", b"fujitsuDA3") if "v3" in path else raw
            r = _post(c, path, body)
            assert r.status_code == 400, r.text
            message = r.json()["error"]["message"]
            assert "variables" in message or "indices" in message or "index" in message, message


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_nan_and_infinity_are_a_400(keyed_server: ServerProcess, literal: bytes) -> None:
    with client_for(keyed_server) as c:
        for where in (b'{"fujitsuDA2":{},"binary_polynomial":{"terms":[{"c":%s,"p":[0,1]}]}}',
                      b'{"fujitsuDA2":{"temperature_start":%s},"binary_polynomial":{"terms":[{"c":1,"p":[0]}]}}',
                      b'{"fujitsuDA2":{},"qubo_matrix":{"qubo":[{"qubo_row":[%s,1]},{"qubo_row":[0,1]}]}}'):
            r = _post(c, SOLVE, where % literal)
            assert r.status_code == 400, r.text


def test_duplicate_terms_are_summed(keyed_server: ServerProcess) -> None:
    """Duplicates are legal DA input: they add up (3 x -1 on x0, +2 on x0 x1: best -3 at 10)."""
    terms = [{"c": -1, "p": [0]}] * 3 + [{"c": 2, "p": [0, 1]}, {"c": 1, "p": [1, 0]}, {"c": 0.5, "p": [1, 1]}]
    with client_for(keyed_server) as c:
        r = check_answer(c.post(SOLVE, json={"binary_polynomial": {"terms": terms},
                                             "fujitsuDA2": {"number_iterations": 200}}), PART)
        best = r.json()["qubo_solution"]["solutions"][0]
        assert best["energy"] == -3.0 and best["configuration"] == {"0": True, "1": False}


@pytest.mark.parametrize("depth", [64, 2_000, 200_000])
def test_deeply_nested_json_is_a_400(keyed_server: ServerProcess, depth: int) -> None:
    with client_for(keyed_server) as c:
        for body in (b"[" * depth + b"]" * depth,
                     b'{"fujitsuDA2":{},"binary_polynomial":{"terms":[{"c":1,"p":' + b"[" * depth + b"0"
                     + b"]" * depth + b"}]}}",
                     b'{"fujitsuDA2":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"):
            r = _post(c, SOLVE, body)
            assert r.status_code in (400, 413), r.text


def test_time_limit_of_a_billion_seconds_is_a_400(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server) as c:
        for path in ("/v3/async/qubo/solve", "/v4/async/qubo/solve"):
            r = check_answer(c.post(path, json={"binary_polynomial": {"terms": [{"c": 1, "p": [0, 1]}]},
                                                "fujitsuDA3": {"time_limit_sec": 10**9}}), PART)
            assert r.status_code == 400 and "time_limit_sec" in r.json()["error"]["message"]


def test_a_billion_replicas_is_a_400(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server) as c:
        for path, block in (("/v1/qubo/solve", "fujitsuDAPT"), (SOLVE, "fujitsuDA2PT"),
                            ("/v2/async/qubo/solve", "fujitsuDA2PT")):
            r = check_answer(c.post(path, json={"binary_polynomial": {"terms": [{"c": 1, "p": [0, 1]}]},
                                                block: {"number_replicas": 10**9}}), PART)
            assert r.status_code == 400 and "number_replicas" in r.json()["error"]["message"]


def test_huge_one_hot_groups_are_a_400(keyed_server: ServerProcess) -> None:
    """Group sizes are checked against the problem before any array of that size exists."""
    with client_for(keyed_server) as c:
        for groups in ({"one_way_one_hot_groups": {"numbers": [10**12]}},
                       {"two_way_one_hot_groups": {"numbers": [2**62]}},
                       {"one_way_one_hot_groups": {"numbers": [1] * 100_000}}):
            r = check_answer(c.post("/v3/async/qubo/solve", json={
                "binary_polynomial": {"terms": [{"c": 1, "p": [0, 1]}]},
                "fujitsuDA3": {"time_limit_sec": 1, **groups}}), PART)
            assert r.status_code == 400 and "one" in r.json()["error"]["message"], r.text


JUNK_IDS = ["%00", "%ff%fe", "\u00fc\u202e\ufeff", "\U0001f4a3" * 50, "a" * 5000, "' OR 1=1 --",
            "${jndi:ldap://x}", "%0d%0aSet-Cookie:%20a=b", "NUL\u0000", "job id with spaces"]
TRAVERSAL_IDS = ["..", "../..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "....//....//etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "~root"]


def _probe_ids(c: httpx.Client, ids: list[str]) -> None:
    for job_id in ids:
        for method, path in (("GET", f"/v2/async/jobs/result/{job_id}"),
                             ("DELETE", f"/da/v3/async/jobs/result/{job_id}"),
                             ("GET", f"/spinout/v1/async/jobs/result/{job_id}")):
            r = check_answer(c.request(method, path), PART)
            if r.status_code == 200:  # httpx resolved "result/.." to the caller's own job list
                assert set(r.json()) == {"job_status_list"}, (method, path, r.text)
                continue
            assert r.status_code in (404, 405), (method, path, r.status_code, r.text)
            assert "root:" not in r.text and "[fonts]" not in r.text
        r = check_answer(c.post("/v2/async/jobs/cancel", json={"job_id": job_id}), PART)
        assert r.status_code == 404 and "set-cookie" not in {k.lower() for k in r.headers}


def test_unicode_junk_job_ids_are_a_404(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server) as c:
        _probe_ids(c, [i.replace("\u0000", "%00") for i in JUNK_IDS])


def test_path_traversal_job_ids_are_a_404(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server) as c:
        _probe_ids(c, TRAVERSAL_IDS)


def test_submission_flood_beyond_the_key_limit_is_a_429(keyed_server: ServerProcess) -> None:
    """40 concurrent submissions of one key with a limit of 4: exactly 4 accepted, the rest 429;
    another key is unaffected."""
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def submit() -> None:
        with client_for(keyed_server, KEY_C) as c:
            r = c.post("/v2/async/qubo/solve", json=small_job(6))
        with lock:
            results.append(r)

    threads = [threading.Thread(target=submit) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in results:
        check_answer(r, PART)
    codes = sorted(r.status_code for r in results)
    accepted = [r.json()["job_id"] for r in results if r.status_code == 200]
    assert len(results) == 40 and len(accepted) == 4 and codes.count(429) == 36, codes
    assert all(r.json()["error"]["message"] == "Exceed limit of number of request."
               for r in results if r.status_code == 429)
    with client_for(keyed_server, KEY_A) as other:
        r = check_answer(other.post(SOLVE, json=small_job(4)), PART)
        assert r.status_code == 200
    with client_for(keyed_server, KEY_C) as c:
        clean_up(c, accepted)
        r = check_answer(c.post("/v2/async/qubo/solve", json=small_job(6)), PART)
        assert r.status_code == 200
        clean_up(c, [r.json()["job_id"]])


def test_server_is_healthy_after_the_abuse(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server, KEY_A) as c:
        r = check_answer(c.post(SOLVE, json=small_job(6)), PART)
        assert r.status_code == 200 and r.json()["status"] == "Done"
    assert "Traceback" not in keyed_server.log.read_text()


def test_higher_order_auxiliaries_count_against_the_size_limit(keyed_server: ServerProcess) -> None:
    """One degree-99,999 term would need ~100,000 auxiliary variables: refused at once."""
    body = {"binary_polynomial": {"terms": [{"c": 1, "p": list(range(99_999))}]},
            "fujitsuDA3": {"time_limit_sec": 1}}
    started = time.monotonic()
    with client_for(keyed_server) as c:
        r = check_answer(c.post("/v3/async/qubo/solve", json=body), PART)
    assert r.status_code == 400 and "auxiliary" in r.json()["error"]["message"], r.text
    assert time.monotonic() - started < 5


def test_raw_path_traversal_is_not_normalised_into_files(keyed_server: ServerProcess) -> None:
    """Dot segments sent verbatim (no client normalisation) still only reach the job routes."""
    import socket

    for raw in ("/v2/async/jobs/result/../../../../etc/passwd", "/v2/async/jobs/result/..%2f..%2fetc%2fpasswd",
                "/da/../../etc/passwd", "//etc/passwd"):
        with socket.create_connection(("127.0.0.1", keyed_server.port or 0), timeout=10) as sock:
            sock.sendall(f"GET {raw} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY_A}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while data := sock.recv(65536):
                reply += data
        head, _, body = reply.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        TALLY_RECORD(status)
        assert status in (400, 404), (raw, reply[:300])
        assert b"root:" not in body and orjson.loads(body)["error"]["code"] == status

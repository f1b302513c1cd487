"""Isolation and authentication: one key never sees, reads, deletes or cancels another key's
job (404, the same answer as an unknown id); keys compared in constant time, never logged,
never stored; no CORS unless configured."""

from __future__ import annotations

import ast
import inspect
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from service.web import auth
from tests.reliability.conftest import (KEY_A, KEY_B, check_answer, clean_up, client_for, small_job,
                                        wait_status)
from tests.service.conftest import ServerProcess

PART = "isolation"


def test_a_key_cannot_touch_another_keys_job(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server, KEY_A) as a, client_for(keyed_server, KEY_B) as b:
        job_id = check_answer(a.post("/v2/async/qubo/solve", json=small_job(6)), PART).json()["job_id"]
        long_id = check_answer(a.post("/v3/async/qubo/solve", json={
            "binary_polynomial": small_job(6)["binary_polynomial"],
            "fujitsuDA3": {"time_limit_sec": 2, "num_run": 2}}), PART).json()["job_id"]
        wait_status(a, job_id, {"Done"})
        unknown = uuid.uuid4().hex
        for jid in (job_id, long_id):
            listed = check_answer(b.get("/v2/async/jobs"), PART).json()["job_status_list"]
            assert jid not in {j["job_id"] for j in listed}
            for method, path in (("GET", "/v2/async/jobs/result/{}"), ("DELETE", "/v2/async/jobs/result/{}"),
                                 ("GET", "/da/v4/async/jobs/result/{}"),
                                 ("GET", "/spinout/v1/async/jobs/result/{}")):
                theirs = check_answer(b.request(method, path.format(jid)), PART)
                nobody = check_answer(b.request(method, path.format(unknown)), PART)
                assert theirs.status_code == nobody.status_code == 404
                assert theirs.json()["error"]["message"].replace(jid, "X") == \
                    nobody.json()["error"]["message"].replace(unknown, "X")
            cancel = check_answer(b.post("/v3/async/jobs/cancel", json={"job_id": jid}), PART)
            assert cancel.status_code == 404
        # B's attempts changed nothing: the job is still A's, still there.
        mine = check_answer(a.get(f"/v2/async/jobs/result/{job_id}"), PART).json()
        assert mine["status"] == "Done" and mine["qubo_solution"]["solutions"]
        clean_up(a, [job_id])
        clean_up(a, [long_id], "v3")


def test_missing_wrong_and_doubled_keys(keyed_server: ServerProcess) -> None:
    with client_for(keyed_server, None) as c:
        for path in ("/v2/async/jobs", "/v2/async/jobs/result/x"):
            assert check_answer(c.get(path), PART).status_code == 400
            r = check_answer(c.get(path, headers={"X-Api-Key": "not-a-key"}), PART)
            assert r.status_code == 401 and r.json()["error"]["message"] == "Access denied due to invalid header"
            assert check_answer(c.get(path, headers={"X-Api-Key": KEY_A, "X-Access-Token": KEY_B}),
                                PART).status_code == 400
            for header in ("x-api-key", "X-API-KEY", "X-Access-Token", "X-DA-Access-Key"):
                assert check_answer(c.get(path, headers={header: KEY_A}),
                                    PART).status_code in (200, 404)
        # a prefix, a suffix or a different case of a key is not the key
        near: str | bytes
        for near in (KEY_A[:-1], KEY_A + "x", KEY_A.upper(), (KEY_A + "\u00e9").encode("latin-1"), b"\xff\xfe", ""):
            r = check_answer(c.get("/v2/async/jobs", headers={"X-Api-Key": near}), PART)
            assert r.status_code in (400, 401)
        assert check_answer(c.get("/v1/healthcheck"), PART).status_code == 200


def test_keys_are_compared_in_constant_time() -> None:
    """hmac.compare_digest against every configured key, no early exit, no == on keys."""
    source = inspect.getsource(auth.authenticate)
    tree = ast.parse(inspect.cleandoc("\n" + source) if source.startswith(" ") else source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "compare_digest"]
    assert calls, "authenticate must use hmac.compare_digest"
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For)]
    assert loops and not any(isinstance(n, ast.Break | ast.Return) for loop in loops for n in ast.walk(loop))
    assert not any(isinstance(n, ast.Compare) and any(isinstance(op, ast.In | ast.Eq) for op in n.ops)
                   and "key" in ast.unparse(n) for n in ast.walk(tree)), "no == / in on keys"


def test_keys_never_reach_logs_or_the_store(keyed_server: ServerProcess) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    marker = "rid-" + uuid.uuid4().hex[:12]
    with client_for(keyed_server, KEY_A) as a:
        job = check_answer(a.post("/v2/async/qubo/solve", json=small_job(5), headers={"X-Request-ID": marker}),
                           PART).json()["job_id"]
        check_answer(a.get("/v2/async/jobs", headers={"X-Api-Key": wrong, "X-Request-ID": marker}), PART)
        check_answer(a.post("/v2/qubo/solve", content=b"{", headers={"X-Request-ID": marker}), PART)
        clean_up(a, [job])
    log = keyed_server.log.read_text()
    assert marker in log, "the server log is captured (INFO, request ids)"
    for secret in (KEY_A, KEY_B, wrong):
        assert secret not in log
    database = next(a for a in keyed_server.args if a.endswith(".sqlite3"))
    with closing(sqlite3.connect(database)) as conn:
        owners = {row[0] for row in conn.execute("SELECT owner FROM jobs")}
    assert KEY_A not in owners and KEY_B not in owners
    raw = Path(database).read_bytes()
    assert KEY_A.encode() not in raw


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "POST"])
def test_cors_is_off_by_default(keyed_server: ServerProcess, method: str) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "x-api-key, content-type"}
    with client_for(keyed_server, KEY_A) as c:
        path = "/v2/async/jobs" if method != "POST" else "/v2/async/jobs/cancel"
        r = c.request(method, path, headers=headers, json={"job_id": "x"} if method == "POST" else None)
        check_answer(r, PART) if r.status_code != 405 else None
        assert not any(k.lower().startswith("access-control-") for k in r.headers), dict(r.headers)

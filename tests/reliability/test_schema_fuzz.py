"""Schemathesis against the service's own OpenAPI document, on real servers, every operation,
with keys configured and with authentication off, schema-valid and schema-violating data.

Every answer is a status the document lists for that operation, its JSON body valid against the
model the document names for it, errors in the DA envelope, no 5xx, no traceback, within the
request timeout. ``SPINOUT_FUZZ_EXAMPLES`` (default 6) sets the examples per operation and mode;
the heavy run uses more (docs/reliability.md).
"""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance

from tests.reliability.conftest import KEY_A, KEY_B, TALLY
from tests.service.conftest import ServerProcess

EXAMPLES = int(os.environ.get("SPINOUT_FUZZ_EXAMPLES", "6"))
#: Answers any route may give besides its own list: a method the route lacks, a trailing-slash
#: redirect (Starlette), a wrong Content-Type.
ALWAYS = {"405", "307", "415"}


@schemathesis.serializer("application/x-msgpack")
def _msgpack(ctx: Any, value: Any) -> bytes:
    """The compact routes' body is msgpack; schemathesis draws bytes or JSON-like values."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return msgpack.packb(value, default=str)


def _fuzz(server: ServerProcess, part: str, headers: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        documented = set(operation.definition.raw.get("responses", {})) | ALWAYS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), extra=headers)
            def run(case: Any, extra: dict[str, str]) -> None:
                case.headers = {**(case.headers or {}), **extra}
                response = case.call(base_url=server.url, timeout=30)
                TALLY.record(part, response.status_code)
                status = str(response.status_code)
                text = response.text
                problem = None
                if response.status_code >= 500:
                    problem = "5xx"
                elif status not in documented:
                    problem = f"undocumented {status}"
                elif "Traceback" in text:
                    problem = "traceback"
                elif response.status_code >= 400:
                    body = response.json()
                    if set(body) != {"error"} or body["error"].get("code") != response.status_code:
                        problem = "no DA envelope"
                if problem is None:
                    try:  # the reply against the model the OpenAPI document names for it
                        case.validate_response(response, checks=[response_schema_conformance])
                    except Exception as exc:  # schemathesis raises a group of failed checks
                        problem = f"reply off its documented model: {str(exc)[:300]}"
                if problem:
                    failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: "
                                    f"{problem}: {status} {text[:200]}")

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can violate the schema
                assert mode is GenerationMode.NEGATIVE, operation.path
    assert not failures, "\n".join(failures[:20])
    assert "unhandled error" not in server.log.read_text()


@pytest.mark.timeout(300)
def test_schema_fuzz_with_keys(keyed_server: ServerProcess) -> None:
    """Mostly a valid key (A or B), sometimes none or a wrong one."""
    keys = st.sampled_from([{"X-Api-Key": KEY_A}, {"X-Api-Key": KEY_A}, {"X-Api-Key": KEY_B},
                            {}, {"X-Api-Key": "wrong"}, {"X-Access-Token": KEY_B}])
    _fuzz(keyed_server, "schemathesis (keys)", keys)


@pytest.mark.timeout(300)
def test_schema_fuzz_auth_off(open_server: ServerProcess) -> None:
    _fuzz(open_server, "schemathesis (auth off)", st.just({}))

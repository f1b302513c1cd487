"""The I/O-free heart of the client: requests to make, replies to read, the submit -> poll -> fetch
flow. ``SolverClient`` (httpx, blocking) and ``AsyncSolverClient`` (httpx, asyncio) only drive it.

A flow is a generator that yields ``Call`` (send this HTTP request, send me the ``Reply``) or
``Sleep`` (wait this long, send me None) and returns its result. Error statuses never reach a
flow: each call goes through ``exchange``, the one retry loop, which asks the driver for
``Attempt``s (send once, send me the ``Reply`` or the ``Failure``) and ``Sleep``s between them,
and raises ``raise_for_reply``'s exception.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Container, Generator, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from . import errors
from .wire import da as models
from .wire import compact as wire
from .policy import PollingPolicy, RetryPolicy
from .problems import EncodedProblem, encode_problem
from .results import SolveResult, parse_compact, parse_solution

#: generation number -> API version of its synchronous / asynchronous routes (None: no such route)
SYNC_VERSION: dict[int, str | None] = {1: "v1", 2: "v2", 3: None}
ASYNC_VERSION: dict[int, str | None] = {1: None, 2: "v2", 3: "v3"}
#: job states: still going, and finished
JSON_TYPE = "application/json"
#: SpinOut's compact (msgpack + raw numpy arrays) routes, for problems too big for DA JSON.
COMPACT_SYNC_PATH = "/spinout/v1/solve"
COMPACT_ASYNC_PATH = "/spinout/v1/async/solve"
#: ``transport="auto"`` switches to the compact body from this many terms on (a term costs
#: ~40 bytes of JSON and a dict on the server; ~16-20 bytes of array in the compact body).
COMPACT_MIN_TERMS = 5_000


@dataclass(frozen=True)
class Call:
    """One HTTP request for a driver to send. ``path`` is relative to the client's base URL."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    job_id: str | None = None
    #: Error statuses handed to the flow instead of raised (409: resend with the pattern).
    passthrough: tuple[int, ...] = ()

    def payload(self) -> Any:
        """The request body as Python data (for inspection and tests)."""
        if self.json is not None:
            return self.json
        if self.content is None:
            return None
        if self.content_type == wire.CONTENT_TYPE:
            return wire.decode_request(self.content)
        return json.loads(self.content)

    def body(self) -> tuple[bytes | None, dict[str, str]]:
        """The encoded body and its Content-Type header."""
        if self.content is not None:
            headers = {"Content-Type": self.content_type or "application/octet-stream"}
            if self.content_type == wire.CONTENT_TYPE:
                headers["Accept"] = f"{wire.CONTENT_TYPE}, {JSON_TYPE}"
            return self.content, headers
        if self.json is not None:
            return json.dumps(self.json, separators=(",", ":")).encode(), {"Content-Type": JSON_TYPE}
        return None, {}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as the flows see it."""

    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_compact(self) -> bool:
        return str(self.headers.get("content-type", "")).startswith(wire.CONTENT_TYPE)

    def decoded(self) -> Any:
        """The body: a ``wire.compact.CompactReply`` for a compact reply, else the parsed JSON."""
        if self.is_compact:
            try:
                return wire.decode_reply(self.content)
            except wire.CompactFormatError as exc:
                raise errors.SpinOutError(f"the service sent a compact reply that cannot be read: {exc}") from exc
        return self.json()

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise errors.SpinOutError(f"the service sent a reply that is not JSON "
                                      f"(HTTP {self.status_code}): {self.content[:200]!r}") from exc


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before the next step (the async driver awaits, the sync one sleeps)."""

    seconds: float


@dataclass(frozen=True)
class Attempt:
    """Send ``call`` once; the driver sends back a ``Reply`` or a ``Failure``."""

    call: Call


@dataclass(frozen=True)
class Failure:
    """A request that got no reply: ``error`` to raise (the driver's mapping of ``cause``), and
    whether a retry may help (connection trouble) or not (a read timeout: the service may still
    be solving)."""

    error: errors.SpinOutError
    cause: BaseException
    retryable: bool


Exchange = Generator[Attempt | Sleep, "Reply | Failure | None", Reply]


def exchange(call: Call, retry: RetryPolicy) -> Exchange:
    """One call with the retries ``retry`` allows: transient failures and the retry statuses
    (429, 503) are tried again after a backoff (``Retry-After`` honoured); the reply is returned,
    or its error raised unless the call passes that status through."""
    attempt = 0
    while True:
        outcome = yield Attempt(call)
        if isinstance(outcome, Failure):
            if not (outcome.retryable and retry.should_retry_error(attempt)):
                raise outcome.error from outcome.cause
            yield Sleep(retry.delay(attempt))
        else:
            assert outcome is not None
            if not retry.should_retry_status(outcome.status_code, attempt):
                if outcome.status_code not in call.passthrough:
                    raise_for_reply(outcome, call.job_id)
                return outcome
            yield Sleep(retry.delay(attempt, outcome.headers.get("Retry-After")))
        attempt += 1


@dataclass(frozen=True)
class JobInfo:
    """A job as the status and list routes describe it."""

    job_id: str
    status: models.JobStatus | str
    start_time: str | None = None


@dataclass(frozen=True)
class JobProgress:
    """Passed to an ``on_status`` callback at each poll of a running job."""

    job_id: str
    status: str
    elapsed: float
    polls: int
    reply: Mapping[str, Any] = field(default_factory=dict)


Step = Call | Sleep
_T = TypeVar("_T")
#: A request flow: yields the steps to take, is sent each call's reply, returns a _T.
Flow = Generator[Step, "Reply | None", _T]
StatusCallback = Callable[[JobProgress], None]


# ---------------------------------------------------------------------------- errors
def raise_for_reply(reply: Reply, job_id: str | None = None) -> None:
    """Raise the ``APIError`` subclass for an HTTP error reply, with the server's message."""
    if reply.status_code < 400:
        return
    title, message, body = "", "", None
    try:
        body = json.loads(reply.content) if reply.content else None
    except ValueError:
        message = reply.content[:500].decode("utf-8", "replace")
    if isinstance(body, Mapping):
        envelope = body.get("error")
        if isinstance(envelope, Mapping):
            title = str(envelope.get("title") or "")
            message = str(envelope.get("message") or "")
        elif "detail" in body:  # a FastAPI default error, should the service ever send one
            message = str(body["detail"])
        elif "message" in body:
            message = str(body["message"])
    cls = errors.error_class_for(reply.status_code)
    raise cls(reply.status_code, message or "(no message)", title=title, job_id=job_id, body=body)


def _check_status(body: Any, job_id: str | None) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise errors.SpinOutError(f"unexpected reply from the service: {body!r:.200}", job_id=job_id)
    return body


# ---------------------------------------------------------------------------- requests
def generation_of(solver: str) -> models.Generation:
    """The DA generation of a solver block key (``ProblemError`` for an unknown key)."""
    try:
        return models.BLOCK_GENERATION[solver]
    except KeyError:
        raise errors.ProblemError(f"unknown solver {solver!r}; choose one of "
                                  f"{', '.join(models.SOLVER_BLOCKS)}") from None


def solver_block(solver: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The solver's parameter block as JSON, checked with the shared wire model (the one the
    service validates with), so a bad value fails here with the field's name.

    Unknown parameters are refused: the service would silently ignore a misspelt one.
    """
    model = models.SOLVER_BLOCKS[solver]
    block = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(block) - set(model.model_fields))
    if unknown:
        raise errors.ProblemError(f"{solver} has no parameter(s) {', '.join(unknown)}; it takes "
                                  f"{', '.join(model.model_fields)}")
    try:
        validated = model.model_validate(block)
    except ValueError as exc:  # pydantic.ValidationError names the field and the range
        raise errors.ProblemError(f"{solver} parameters: {exc}") from exc
    return validated.model_dump(mode="json", exclude_unset=True, exclude_none=True, by_alias=True)


@dataclass(frozen=True)
class SolvePlan:
    """Everything a solve needs decided before the first byte is sent."""

    solver: str
    mode: str  # "sync" or "async"
    version: str
    call: Call
    transport: str  # "json" or "compact"
    num_variables: int
    labels: tuple[Hashable, ...] | None
    #: The problem's coupling pattern (compact transport), known to the service once it succeeded.
    pattern_key: str | None = None
    #: The request with the pattern's rows and cols, for a service that answers 409 to ``call``.
    fallback: Callable[[], Call] | None = None


def build_request(problem: EncodedProblem, solver: str, params: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> bytes:
    """The DA JSON request body: the problem's terms plus the solver block, as UTF-8 bytes."""
    head: dict[str, Any] = {solver: solver_block(solver, params)}
    for key, value in (extra or {}).items():
        if key == "binary_polynomial":
            raise errors.ProblemError("extra must not repeat binary_polynomial (the problem is given)")
        head[key] = value
    rest = json.dumps(head, separators=(",", ":"))
    return ('{"binary_polynomial":{"terms":' + problem.da_terms_json() + "}," + rest[1:]).encode()


def resolve_solver(solver: Any, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """``solver`` as a block key, or a block model instance (``models.FujitsuDA3(...)``) whose set
    fields become parameters (keyword parameters win)."""
    if isinstance(solver, str):
        return solver, dict(params or {})
    for key, cls in models.SOLVER_BLOCKS.items():
        if type(solver) is cls:
            fields = solver.model_dump(mode="json", exclude_unset=True, exclude_none=True)
            return key, {**fields, **(params or {})}
    raise errors.ProblemError(f"solver must be a block name or a client.wire.da block, not {solver!r}")


def plan_solve(problem: Any, solver: Any = "fujitsuDA3", params: Mapping[str, Any] | None = None,
               *, mode: str = "auto", num_variables: int | None = None,
               extra: Mapping[str, Any] | None = None, transport: str = "auto",
               compact_min_terms: int = COMPACT_MIN_TERMS,
               known_patterns: Container[str] = frozenset()) -> SolvePlan:
    """Encode the problem and choose the route and the body format.

    ``mode="auto"`` uses the synchronous route where the generation has one (v1, v2 solvers) and
    the asynchronous one otherwise (fujitsuDA3); ``"sync"``/``"async"`` force a route.
    ``transport="auto"`` sends DA JSON up to ``compact_min_terms`` terms and SpinOut's compact
    msgpack body beyond (not for higher-order terms or ``extra`` fields, which only DA JSON
    carries); ``"json"``/``"compact"`` force one. A problem from a ``CouplingPattern`` in
    ``known_patterns`` goes out (compact) without its rows and cols, with a fallback that has them.

    Raises:
        ProblemError: unknown solver, a route the generation does not have, a problem too large
            for the generation, or a bad problem.
    """
    solver, params = resolve_solver(solver, params)
    generation = generation_of(solver)
    state = None  # guidance_config given as an array: numpy in, a full 0/1 starting state
    if params.get("guidance_config") is not None and not isinstance(params["guidance_config"], Mapping):
        state = np.asarray(params.pop("guidance_config"))
        if state.ndim != 1 or state.dtype.kind not in "biuf" or not np.all((state == 0) | (state == 1)):
            raise errors.ProblemError("guidance_config must be a {index: bool} map or a 1-D array of 0/1")
    if mode not in ("auto", "sync", "async"):
        raise errors.ProblemError(f"mode must be 'auto', 'sync' or 'async', not {mode!r}")
    encoded = encode_problem(problem, num_variables=num_variables)
    limit = generation.max_bits
    if encoded.num_variables > limit:
        raise errors.ProblemError(f"{solver} accepts at most {limit:,} variables; this problem has "
                                  f"{encoded.num_variables:,} (use fujitsuDA3 for up to 100,000)")
    if encoded.higher_order and generation.number < 3:
        raise errors.ProblemError(f"{solver} accepts only linear and quadratic terms; use fujitsuDA3 "
                                  "for higher-order terms")
    sync_version, async_version = SYNC_VERSION[generation.number], ASYNC_VERSION[generation.number]
    if mode == "auto":
        mode = "sync" if sync_version else "async"
    version = sync_version if mode == "sync" else async_version
    if version is None:
        raise errors.ProblemError(f"{solver} has no {'synchronous' if mode == 'sync' else 'asynchronous'}"
                                  f" route; use mode={'async' if mode == 'sync' else 'sync'!r}")
    if transport not in ("auto", "json", "compact"):
        raise errors.ProblemError(f"transport must be 'auto', 'json' or 'compact', not {transport!r}")
    json_only = bool(encoded.higher_order or extra)
    if transport == "compact" and json_only:
        raise errors.ProblemError("higher-order terms and extra request fields need transport='json'")
    if transport == "auto":
        transport = "compact" if encoded.num_terms >= compact_min_terms and not json_only else "json"
    if state is not None:
        if state.size != encoded.num_variables:
            raise errors.ProblemError(f"guidance_config has {state.size} values for "
                                      f"{encoded.num_variables} variables")
        if transport != "compact":  # DA JSON carries it as the DA's map
            params["guidance_config"] = dict(zip(map(str, range(state.size)), map(bool, state.tolist())))
    key, fallback = None, None
    if transport == "compact":
        block = solver_block(solver, params or {})
        path = COMPACT_SYNC_PATH if mode == "sync" else COMPACT_ASYNC_PATH
        key = encoded.pattern_key
        lean = key is not None and key in known_patterns

        def compact_call(with_pattern: bool) -> Call:
            content = encode_compact(encoded, solver, block, version, state, with_pattern=with_pattern)
            return Call("POST", path, content=content, content_type=wire.CONTENT_TYPE,
                        passthrough=() if with_pattern else (409,))

        call = compact_call(not lean)
        if lean:
            fallback = functools.partial(compact_call, True)
    else:
        body = build_request(encoded, solver, params or {}, extra)
        path = f"/{version}/qubo/solve" if mode == "sync" else f"/{version}/async/qubo/solve"
        call = Call("POST", path, content=body, content_type=JSON_TYPE)
    return SolvePlan(solver, mode, version, call, transport, encoded.num_variables, encoded.labels,
                     key, fallback)


def encode_compact(encoded: EncodedProblem, solver: str, block: Mapping[str, Any],
                   version: str, guidance_state: np.ndarray | None = None,
                   with_pattern: bool = True) -> bytes:
    """The compact msgpack request body (``client.wire.compact``'s format); a guidance state given
    as an array travels as one (one byte a variable); ``with_pattern=False`` leaves a
    ``CouplingPattern`` problem's rows and cols out."""
    problem = wire.CompactProblem(encoded.num_variables, encoded.rows, encoded.cols, encoded.values,
                                  encoded.linear, encoded.constant, encoded.pattern_key)
    return wire.encode_request(problem, solver, block, api_version=version,
                               guidance_state=guidance_state, with_pattern=with_pattern)


def send_flow(plan: SolvePlan) -> Flow[Reply]:
    """Send the plan's request; resend it with the pattern once if the service answers 409 (it
    does not hold the pattern: restarted, or evicted it). Returns the reply."""
    reply = yield plan.call
    assert reply is not None
    if reply.status_code == 409 and plan.fallback is not None:
        reply = yield plan.fallback()
        assert reply is not None
    return reply


# ---------------------------------------------------------------------------- replies
def parse_sync_reply(body: Any, plan: SolvePlan) -> SolveResult:
    if isinstance(body, wire.CompactReply):
        result = result_from_job_reply(body, body.job_id or "", num_variables=plan.num_variables,
                                       labels=plan.labels)
        if result is None:
            raise errors.SpinOutError(f"the synchronous solve answered {body.status!r}")
        result.job_id = None
        return result
    body = _check_status(body, None)
    if body.get("status") not in (None, models.JobStatus.DONE) or "qubo_solution" not in body:
        raise errors.JobFailedError(f"the synchronous solve did not finish: {body.get('message') or body!r:.300}",
                                    job_id=None, status=str(body.get("status")))
    return parse_solution(body["qubo_solution"], num_variables=plan.num_variables, labels=plan.labels)


def parse_job_id(body: Any) -> str:
    if isinstance(body, wire.CompactReply):
        body = {"job_id": body.job_id}
    body = _check_status(body, None)
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise errors.SpinOutError(f"the service accepted the job but sent no job_id: {body!r:.200}")
    return job_id


def as_status(value: Any) -> models.JobStatus | str:
    """A ``JobStatus`` (a ``str`` enum: compares equal to "Done"), or the raw text if unknown."""
    try:
        return models.JobStatus(value)
    except ValueError:
        return str(value)


def status_of(body: Any) -> models.JobStatus | str:
    """The ``status`` of a job reply, DA JSON or compact."""
    if isinstance(body, wire.CompactReply):
        return as_status(body.status)
    return as_status(_check_status(body, None).get("status"))


def parse_job_list(body: Any) -> list[JobInfo]:
    body = _check_status(body, None)
    return [JobInfo(str(j.get("job_id")), as_status(j.get("job_status")), j.get("start_time"))
            for j in body.get("job_status_list") or []]


def result_from_job_reply(body: Any, job_id: str, *, num_variables: int | None = None,
                          labels: tuple[Hashable, ...] | None = None) -> SolveResult | None:
    """A finished job's result, None while it is Waiting or Running (DA JSON or compact reply).

    Raises:
        JobFailedError: the job ended in Error or was Canceled (or deleted without a result).
    """
    if isinstance(body, wire.CompactReply):
        if body.status in models.PENDING_STATUSES:
            return None
        if body.status in (models.JobStatus.DONE, models.JobStatus.DELETED):
            return parse_compact(body, num_variables=num_variables, job_id=job_id, labels=labels)
        body = {"status": body.status, "message": body.message}
    body = _check_status(body, job_id)
    status = str(body.get("status"))
    if status in models.PENDING_STATUSES:
        return None
    if status in (models.JobStatus.DONE, models.JobStatus.DELETED) and "qubo_solution" in body:
        return parse_solution(body["qubo_solution"], num_variables=num_variables, job_id=job_id,
                              status=status, labels=labels)
    if status == models.JobStatus.ERROR:
        raise errors.JobFailedError(f"job {job_id} failed on the service: {body.get('message') or '(no message)'}",
                                    job_id=job_id, status=status)
    if status in (models.JobStatus.CANCELED, models.JobStatus.DELETED):
        raise errors.JobFailedError(f"job {job_id} was {status.lower()} before it produced a result",
                                    job_id=job_id, status=status)
    raise errors.SpinOutError(f"job {job_id}: unexpected status {status!r}", job_id=job_id)


# ---------------------------------------------------------------------------- flows
def result_path(version: str, job_id: str) -> str:
    return f"/{version}/async/jobs/result/{job_id}"


def wait_flow(job_id: str, version: str, polling: PollingPolicy, clock: Callable[[], float], *,
              consume: bool = False, num_variables: int | None = None,
              labels: tuple[Hashable, ...] | None = None,
              on_status: StatusCallback | None = None) -> Flow[SolveResult]:
    """Poll a job until it finishes; return its ``SolveResult``.

    With ``consume`` the flow polls with DELETE, which the DA answers with the current status for
    an unfinished job (leaving it alone) and with the result for a finished one, removing it: one
    request per poll and no job left behind to count against the key's limit.

    Raises:
        SolveTimeoutError: ``polling.timeout`` elapsed; the job is untouched and can be waited on.
        JobFailedError: the job ended in Error or Canceled.
    """
    start = clock()
    polls = 0
    method = "DELETE" if consume else "GET"
    while True:
        reply = yield Call(method, result_path(version, job_id), job_id=job_id)
        assert reply is not None
        body = reply.decoded()
        result = result_from_job_reply(body, job_id, num_variables=num_variables, labels=labels)
        if result is not None:
            return result
        status = str(body.status if isinstance(body, wire.CompactReply) else body.get("status"))
        if isinstance(body, wire.CompactReply):
            body = {"status": status}
        elapsed = clock() - start
        if on_status is not None:
            on_status(JobProgress(job_id, status, elapsed, polls, body))
        delay = polling.delay(polls)
        if polling.timeout is not None:
            left = polling.timeout - elapsed
            if left <= 0:
                raise errors.SolveTimeoutError(job_id, elapsed, status)
            delay = min(delay, left)
        yield Sleep(delay)
        polls += 1


def solve_flow(plan: SolvePlan, polling: PollingPolicy, clock: Callable[[], float], *,
               keep_job: bool = False, on_submit: Callable[[str, str], None] | None = None,
               on_status: StatusCallback | None = None) -> Flow[SolveResult]:
    """Solve synchronously, or submit -> poll -> fetch (removing the finished job unless
    ``keep_job``)."""
    reply = yield from send_flow(plan)
    if plan.mode == "sync":
        return parse_sync_reply(reply.decoded(), plan)
    job_id = parse_job_id(reply.decoded())
    if on_submit is not None:
        on_submit(job_id, plan.version)
    try:
        return (yield from wait_flow(job_id, plan.version, polling, clock, consume=not keep_job,
                                     num_variables=plan.num_variables, labels=plan.labels,
                                     on_status=on_status))
    except errors.SpinOutError as exc:
        exc.job_id = exc.job_id or job_id
        raise

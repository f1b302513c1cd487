"""The wire models of the Digital Annealer Web API: the ONE definition, shared by client and service.

Pydantic only (no FastAPI, no I/O), so the client, the service and the tests import the same
classes and cannot drift. Field names are the DA's exactly.

What lives here:
    * job states (``JobStatus``) and the small enums of the parameter blocks;
    * the problem input (``BinaryPolynomial`` with both term spellings, ``QuboMatrix``,
      ``Inequality``);
    * one class per solver block (``FujitsuDA`` ... ``FujitsuDA3``) with the DA's defaults and
      ranges, plus ``SOLVER_BLOCKS``/``BLOCK_GENERATION``/``GENERATIONS`` tying block keys to
      generations, path versions and size limits;
    * ``SolveRequest`` (the whole body) and ``RequestEnvelope`` (the body without the problem,
      what the service validates with pydantic; the terms themselves are checked vectorised);
    * responses: ``QuboSolution`` (v1/v2, integer millisecond timings) and ``QuboSolutionV3``
      (v3+, string millisecond timings, ``progress``, ``penalty_energy``), the sync and async
      replies, the job status list and the error envelope.

Choices where the public record is silent (documented in docs/service.md too):
    * unknown fields in a parameter block are ignored (existing clients send fields we do not
      model); out-of-range values are a 400 naming the field;
    * ``random_seed`` (an extension) on every block makes a run reproducible;
    * fujitsuDA/fujitsuDAMixedMode/fujitsuDA2/fujitsuDA2MixedMode default to 10,000 iterations
      (the record gives no default; this suits a CPU), fujitsuDAPT/fujitsuDA2PT to 100,000.
"""

from __future__ import annotations

from enum import Enum
from itertools import accumulate
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BLOCK_GENERATION",
    "GENERATIONS",
    "SOLVER_BLOCKS",
    "ApiVersion",
    "BinaryPolynomial",
    "BinaryPolynomialTerm",
    "CancelRequest",
    "ErrorBody",
    "ErrorEnvelope",
    "FujitsuDA",
    "FujitsuDA2",
    "FujitsuDA2MixedMode",
    "FujitsuDA2PT",
    "FujitsuDA3",
    "FujitsuDAMixedMode",
    "FujitsuDAPT",
    "Generation",
    "Inequality",
    "JobResult",
    "JobStatus",
    "JobStatusEntry",
    "JobStatusList",
    "JobSubmitted",
    "KHotGroupsSpec",
    "NoiseModel",
    "OneHotGroups",
    "ProgressEntry",
    "QuboMatrix",
    "QuboRow",
    "QuboSolution",
    "QuboSolutionV3",
    "RequestEnvelope",
    "SolutionEntry",
    "SolutionMode",
    "SolveRequest",
    "SyncSolveResponse",
    "TemperatureMode",
    "Timing",
    "TimingDetail",
    "TimingDetailV3",
    "TimingV3",
    "error_title",
    "generation_for_version",
    "solver_key",
]

MAX_ITERATIONS = 2_000_000_000


# --------------------------------------------------------------------------------------- enums
class JobStatus(str, Enum):
    """A job's life: Waiting -> Running -> Done | Error; Waiting -> Canceled by the user.
    ``Deleted`` only appears on the DELETE reply of a finished job."""

    WAITING = "Waiting"
    RUNNING = "Running"
    DONE = "Done"
    ERROR = "Error"
    CANCELED = "Canceled"
    DELETED = "Deleted"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


#: A job not yet run, or running. Tuples, not sets: a str-valued Enum member hashes by its name,
#: so ``"Waiting" in {JobStatus.WAITING}`` is False while ``in (JobStatus.WAITING,)`` is True.
PENDING_STATUSES = (JobStatus.WAITING, JobStatus.RUNNING)
#: A job with its result, its error or its cancellation; it stays until deleted or expired.
FINISHED_STATUSES = (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELED)


class SolutionMode(str, Enum):
    COMPLETE = "COMPLETE"
    QUICK = "QUICK"


class NoiseModel(str, Enum):
    METROPOLIS = "METROPOLIS"
    GIBBS = "GIBBS"


class TemperatureMode(str, Enum):
    EXPONENTIAL = "EXPONENTIAL"
    INVERSE = "INVERSE"
    INVERSE_ROOT = "INVERSE_ROOT"


ApiVersion = Literal["v1", "v2", "v3", "v3c", "v4"]


# ------------------------------------------------------------------------------ problem input
class BinaryPolynomialTerm(BaseModel):
    """One term ``c * prod(x_i for i in p)``; long (coefficient/polynomials) or short (c/p)
    spelling, the short one wins when both are given. No indices (or []) = a constant."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    c: float = Field(validation_alias=AliasChoices("c", "coefficient"))
    p: list[int] = Field(default_factory=list, validation_alias=AliasChoices("p", "polynomials"))

    @model_validator(mode="before")
    @classmethod
    def _short_wins(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "c" in data:
                data.pop("coefficient", None)
            if "p" in data:
                data.pop("polynomials", None)
        return data

    @field_validator("p")
    @classmethod
    def _non_negative(cls, value: list[int]) -> list[int]:
        if any(i < 0 for i in value):
            raise ValueError("variable indices must be non-negative")
        return value


class BinaryPolynomial(BaseModel):
    terms: list[BinaryPolynomialTerm] = Field(default_factory=list)


class QuboRow(BaseModel):
    qubo_row: list[float]


class QuboMatrix(BaseModel):
    """Energy x^T Q x with Q given row by row (v1/v2)."""

    qubo: list[QuboRow]


class Inequality(BaseModel):
    """A v3+ linear inequality constraint: sum(terms) <= 0 with first-order terms and constants;
    a state that breaks it pays ``lambda`` x max(0, sum(terms)) (docs/service.md)."""

    model_config = ConfigDict(populate_by_name=True)

    terms: list[BinaryPolynomialTerm]
    lambda_: float = Field(1.0, alias="lambda", ge=1, le=1e9)


class OneHotGroups(BaseModel):
    numbers: list[int] = Field(default_factory=list)


class KHotGroupsSpec(BaseModel):
    """SpinOut extension: groups of consecutive variables each holding exactly ``counts[g]``
    ones, kept natively by the engine (swap moves; no penalty terms).

    Group g covers the ``numbers[g]`` variables after group g - 1, the first starting at
    ``start``; without ``start``, right after the DA3 one-hot groups (one-way, then two-way),
    i.e. at variable 0 on every other block. ``start`` may also list each group's first
    variable (ascending, groups not overlapping), for groups with free variables between them.
    """

    model_config = ConfigDict(extra="forbid")

    numbers: list[int] = Field(default_factory=list, description="group sizes, each >= 1")
    counts: list[int] = Field(default_factory=list,
                              description="ones each group holds, 0 <= count <= size")
    start: int | list[int] | None = Field(
        None, description="the first group's first variable, or each group's")

    @model_validator(mode="after")
    def _counts_fit(self) -> KHotGroupsSpec:
        if len(self.numbers) != len(self.counts):
            raise ValueError(f"{len(self.numbers)} group sizes (numbers) but {len(self.counts)} "
                             "counts")
        for g, (size, count) in enumerate(zip(self.numbers, self.counts)):
            if size < 1:
                raise ValueError(f"numbers[{g}]: group sizes must be >= 1, got {size}")
            if not 0 <= count <= size:
                raise ValueError(f"counts[{g}]: {count} ones do not fit a group of {size}")
        if isinstance(self.start, int) and self.start < 0:
            raise ValueError(f"start must be >= 0, got {self.start}")
        if isinstance(self.start, list):
            if len(self.start) != len(self.numbers):
                raise ValueError(f"start lists {len(self.start)} first variables for "
                                 f"{len(self.numbers)} groups")
            for g in range(len(self.start)):
                floor = 0 if g == 0 else self.start[g - 1] + self.numbers[g - 1]
                if self.start[g] < floor:
                    raise ValueError(f"start[{g}] = {self.start[g]}: groups must be listed in "
                                     f"order without overlapping (the earliest allowed is {floor})")
        return self

    def firsts(self, default: int = 0) -> list[int]:
        """Each group's first variable (``default``: where the groups start without ``start``)."""
        if isinstance(self.start, list):
            return list(self.start)
        first = default if self.start is None else self.start
        return list(accumulate(self.numbers[:-1], initial=first))


# ------------------------------------------------------------------------------ solver blocks
GuidanceConfig = dict[str, bool]


class _Block(BaseModel):
    """Common behaviour: unknown fields ignored, ``random_seed`` extension, index-keyed configs."""

    model_config = ConfigDict(extra="ignore", use_enum_values=True, validate_default=True)

    random_seed: int | None = Field(None, ge=0, lt=2**63,
                                    description="SpinOut extension: seed for a reproducible run")
    k_hot_groups: KHotGroupsSpec | None = Field(
        None, description="SpinOut extension: groups holding exactly k ones (native swap moves)")

    @field_validator("guidance_config", "fixed_config", check_fields=False)
    @classmethod
    def _index_keys(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        if value is not None:
            for key in value:
                if not key.isdigit():
                    raise ValueError(f"keys must be non-negative integer indices, got {key!r}")
        return value


class _AnnealingBlock(_Block):
    """The fields every DA annealing block shares (schedule, dynamic offset, output, guidance)."""

    number_iterations: int = Field(10_000, ge=1, le=MAX_ITERATIONS)
    offset_increase_rate: float | None = Field(None, ge=0)
    temperature_start: float | None = Field(None, gt=0)
    temperature_decay: float | None = Field(None, gt=0, lt=1)
    temperature_interval: int = Field(100, ge=1, le=MAX_ITERATIONS)
    temperature_mode: TemperatureMode = TemperatureMode.EXPONENTIAL
    solution_mode: SolutionMode = SolutionMode.COMPLETE
    guidance_config: GuidanceConfig | None = None
    final_states: bool = Field(
        False, description="SpinOut extension: every run stays at temperature_start and reports "
                           "where it ends (Boltzmann samples), not the best state it saw")

    @model_validator(mode="after")
    def _fixed_temperature(self) -> _AnnealingBlock:
        if self.final_states:
            if self.temperature_start is None or self.temperature_decay is not None:
                raise ValueError("final_states samples at one fixed temperature: give "
                                 "temperature_start and leave temperature_decay out")
            if not getattr(self, "expert_mode", False):
                raise ValueError("final_states runs at the user's temperature: use fujitsuDA or "
                                 "fujitsuDA2 with expert_mode true")
        return self


class FujitsuDAMixedMode(_AnnealingBlock):
    """As fujitsuDA without expert_mode (always the hardware precision, automatic temperatures
    unless given)."""

    number_runs: int = Field(100, ge=1, le=1024)
    noise_model: NoiseModel = NoiseModel.METROPOLIS


class FujitsuDA(FujitsuDAMixedMode):
    """First-generation DA annealing (v1). ``expert_mode`` false: coefficients rounded to the
    hardware precision and manual temperatures ignored."""

    expert_mode: bool = False


class FujitsuDAPT(_Block):
    """First-generation parallel tempering (v1)."""

    number_iterations: int = Field(100_000, ge=1, le=MAX_ITERATIONS)
    number_replicas: int = Field(100, ge=2, le=128)
    offset_increase_rate: float = Field(1_000.0, ge=0)
    solution_mode: SolutionMode = SolutionMode.COMPLETE
    guidance_config: GuidanceConfig | None = None


class FujitsuDA2MixedMode(_AnnealingBlock):
    """Second-generation mixed mode (v2): as fujitsuDA2 without expert_mode."""

    number_runs: int = Field(16, ge=16, le=128)


class FujitsuDA2(FujitsuDA2MixedMode):
    """Second-generation annealing (v2): as fujitsuDA without noise_model."""

    expert_mode: bool = False


class FujitsuDA2PT(_Block):
    """Second-generation parallel tempering (v2). Omitted offset rate and top temperature are
    tuned from the problem."""

    number_iterations: int = Field(100_000, ge=1, le=MAX_ITERATIONS)
    number_replicas: int = Field(100, ge=26, le=128)
    offset_increase_rate: float | None = Field(None, ge=0)
    maximum_replica_temperature: float | None = Field(None, gt=0)
    solution_mode: SolutionMode = SolutionMode.COMPLETE
    guidance_config: GuidanceConfig | None = None


class FujitsuDA3(_Block):
    """Third/fourth-generation time-limited solver (v3, v3c, v4)."""

    time_limit_sec: int = Field(10, ge=1, le=3600)
    target_energy: float | None = None
    num_run: int = Field(16, ge=1, le=1024)
    num_group: int = Field(1, ge=1, le=16)
    num_output_solution: int = Field(5, ge=1, le=1024)
    gs_level: int = Field(5, ge=0, le=100)
    gs_cutoff: int = Field(8000, ge=0, le=1_000_000)
    one_hot_level: int = Field(3, ge=0, le=100)
    one_hot_cutoff: int = Field(100, ge=0, le=1_000_000)
    internal_penalty: int = Field(0, ge=0, le=1)
    penalty_auto_mode: int = Field(1, ge=0, le=10_000)
    penalty_coef: float = Field(1.0, ge=1, le=2**63)
    penalty_inc_rate: int = Field(150, ge=100, le=200)
    max_penalty_coef: float = Field(0.0, ge=0, le=2**63)
    guidance_config: GuidanceConfig | None = None
    fixed_config: GuidanceConfig | None = None
    one_way_one_hot_groups: OneHotGroups | None = None
    two_way_one_hot_groups: OneHotGroups | None = None

    @field_validator("two_way_one_hot_groups")
    @classmethod
    def _square_groups(cls, value: OneHotGroups | None) -> OneHotGroups | None:
        if value is not None:
            for k2 in value.numbers:
                k = int(round(k2 ** 0.5))
                if k * k != k2 or k2 < 1:
                    raise ValueError(f"each two-way one-hot group size must be a square k*k, got {k2}")
        return value


#: DA JSON key -> parameter block class.
SOLVER_BLOCKS: dict[str, type[_Block]] = {
    "fujitsuDA": FujitsuDA,
    "fujitsuDAPT": FujitsuDAPT,
    "fujitsuDAMixedMode": FujitsuDAMixedMode,
    "fujitsuDA2": FujitsuDA2,
    "fujitsuDA2PT": FujitsuDA2PT,
    "fujitsuDA2MixedMode": FujitsuDA2MixedMode,
    "fujitsuDA3": FujitsuDA3,
}


class Generation(BaseModel):
    """A DA generation: its solver keys, the path versions that serve it and its size limit."""

    number: int
    blocks: tuple[str, ...]
    versions: tuple[str, ...]
    max_bits: int


GENERATIONS: tuple[Generation, ...] = (
    Generation(number=1, blocks=("fujitsuDA", "fujitsuDAPT", "fujitsuDAMixedMode"),
               versions=("v1",), max_bits=1_024),
    Generation(number=2, blocks=("fujitsuDA2", "fujitsuDA2PT", "fujitsuDA2MixedMode"),
               versions=("v2",), max_bits=8_192),
    Generation(number=3, blocks=("fujitsuDA3",), versions=("v3", "v3c", "v4"), max_bits=100_000),
)

#: solver key -> its generation.
BLOCK_GENERATION: dict[str, Generation] = {key: g for g in GENERATIONS for key in g.blocks}


def generation_for_version(version: str) -> Generation:
    """The generation a path version serves (``"v3c"`` -> the third)."""
    for g in GENERATIONS:
        if version in g.versions:
            return g
    raise ValueError(f"unknown API version {version!r}")


def solver_key(body: dict[str, Any]) -> str:
    """The one solver key of a request body; ValueError naming the problem otherwise."""
    keys = [k for k in body if k in SOLVER_BLOCKS]
    if not keys:
        raise ValueError(f"the request names no solver; give one of {', '.join(SOLVER_BLOCKS)}")
    if len(keys) > 1:
        raise ValueError(f"the request names several solvers ({', '.join(keys)}); give exactly one")
    return keys[0]


class RequestEnvelope(BaseModel):
    """A solve request without its problem terms: what the service validates with pydantic
    (the terms, possibly millions, are checked vectorised instead)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    fujitsuDA: FujitsuDA | None = None
    fujitsuDAPT: FujitsuDAPT | None = None
    fujitsuDAMixedMode: FujitsuDAMixedMode | None = None
    fujitsuDA2: FujitsuDA2 | None = None
    fujitsuDA2PT: FujitsuDA2PT | None = None
    fujitsuDA2MixedMode: FujitsuDA2MixedMode | None = None
    fujitsuDA3: FujitsuDA3 | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_solver(cls, data: Any) -> Any:
        if isinstance(data, dict):
            solver_key(data)
        return data

    @property
    def solver(self) -> str:
        return next(k for k in SOLVER_BLOCKS if getattr(self, k) is not None)

    @property
    def parameters(self) -> _Block:
        block: _Block = getattr(self, self.solver)
        return block


class SolveRequest(RequestEnvelope):
    """The whole DA solve body: one problem form plus exactly one solver block.

    Example:
        >>> SolveRequest(binary_polynomial={"terms": [{"c": -1, "p": [0]}]}, fujitsuDA2={})
    """

    binary_polynomial: BinaryPolynomial | None = None
    qubo_matrix: QuboMatrix | None = None
    penalty_binary_polynomial: BinaryPolynomial | None = None
    inequalities: list[Inequality] | None = None

    @model_validator(mode="after")
    def _one_problem(self) -> SolveRequest:
        if (self.binary_polynomial is None) == (self.qubo_matrix is None):
            raise ValueError("give exactly one of binary_polynomial and qubo_matrix")
        return self


# ---------------------------------------------------------------------------------- responses
class SolutionEntry(BaseModel):
    """One entry of ``qubo_solution.solutions``."""

    energy: float
    frequency: int
    configuration: dict[str, bool]
    penalty_energy: float | None = Field(None, description="v3+ only: the penalty polynomial's value")


class TimingDetail(BaseModel):
    anneal_time: int


class Timing(BaseModel):
    """v1/v2 timings: integers of milliseconds."""

    cpu_time: int
    queue_time: int
    solve_time: int
    total_elapsed_time: int
    detailed: TimingDetail


class TimingDetailV3(BaseModel):
    anneal_time: str


class TimingV3(BaseModel):
    """v3+ timings: strings of milliseconds."""

    cpu_time: str | None = None
    queue_time: str | None = None
    solve_time: str
    total_elapsed_time: str
    detailed: TimingDetailV3 | None = None


class ProgressEntry(BaseModel):
    energy: float
    penalty_energy: float
    time: float = Field(description="seconds since the solve started")


class QuboSolution(BaseModel):
    """v1/v2 result; solutions sorted by energy ascending (solutions[0] is the best)."""

    result_status: bool = True
    solutions: list[SolutionEntry]
    timing: Timing
    solver_input_parameters: dict[str, Any] | None = None


class QuboSolutionV3(BaseModel):
    """v3+ result: string timings, progress and per-solution penalty_energy."""

    result_status: bool = True
    solutions: list[SolutionEntry]
    timing: TimingV3
    progress: list[ProgressEntry] = Field(default_factory=list)
    solver_input_parameters: dict[str, Any] | None = None


class SyncSolveResponse(BaseModel):
    """Synchronous reply; clients reject one without the top-level ``status``."""

    qubo_solution: QuboSolution
    status: JobStatus = JobStatus.DONE


class JobSubmitted(BaseModel):
    job_id: str


class JobStatusEntry(BaseModel):
    job_id: str
    job_status: JobStatus
    start_time: str = Field(description="ISO 8601, when the job was accepted")


class JobStatusList(BaseModel):
    job_status_list: list[JobStatusEntry]


class JobResult(BaseModel):
    """GET/DELETE on a job: ``status`` always; ``qubo_solution`` once Done; ``message`` on Error."""

    status: JobStatus
    qubo_solution: QuboSolution | QuboSolutionV3 | None = None
    message: str | None = None


class CancelRequest(BaseModel):
    job_id: str


class ErrorBody(BaseModel):
    code: int
    title: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every error reply: ``{"error": {"code", "title", "message"}}``."""

    error: ErrorBody


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Resource Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
           415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable", 504: "Gateway Timeout"}


def error_title(code: int) -> str:
    """The envelope title for an HTTP status code."""
    return _TITLES.get(code, "Error")

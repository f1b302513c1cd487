"""The service's own solve request: what parsing produces (from DA JSON or from the compact
transport), what a job's stored payload holds and what the solvers take.

It carries the wire request's fields plus what only the service knows: the auxiliary variables
of a reduced higher-order problem (replies report the original variables) and the registered
coupling pattern the problem's rows and cols belong to. The payload is the compact request's
msgpack map with the auxiliaries added, so a stored job decodes with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import msgpack
import numpy as np
from pydantic import ValidationError

from client.wire.compact import (CompactFormatError, CompactRequest, decode_array, encode_array,
                                 request_from_map, request_map, unpack_map)
from client.wire.da import SOLVER_BLOCKS

if TYPE_CHECKING:
    from .patterns import RegisteredPattern

__all__ = ["SolveJob"]


@dataclass
class SolveJob(CompactRequest):
    """A wire request (problem, solver, parameter block, penalty, guidance, inequalities) and
    the service's bookkeeping."""

    #: Auxiliary variables of a reduced higher-order problem: row k is the (a, b) pair that
    #: variable ``num_output_variables + k`` stands for.
    aux_pairs: np.ndarray | None = None
    #: How many leading variables a reply reports (None: all of them).
    num_output_variables: int | None = None
    #: The registered layout the problem's rows and cols are (None: the problem's own arrays).
    pattern: RegisteredPattern | None = None

    @classmethod
    def from_wire(cls, request: CompactRequest) -> SolveJob:
        return cls(**{f.name: getattr(request, f.name) for f in fields(CompactRequest)})

    def to_payload(self) -> bytes:
        """The job as stored: the compact request map plus the auxiliaries."""
        body = request_map(self.problem, self.solver, self.parameters, penalty=self.penalty,
                           api_version=self.api_version, guidance_state=self.guidance_state,
                           inequalities=self.inequalities)
        if self.aux_pairs is not None:
            body["aux_pairs"] = encode_array(np.asarray(self.aux_pairs, dtype=np.int64).reshape(-1, 2))
            body["num_output_variables"] = int(self.num_output_variables
                                               or self.problem.num_variables)
        return msgpack.packb(body, use_bin_type=True)

    @classmethod
    def from_payload(cls, payload: bytes) -> SolveJob:
        """A stored job, its parameter block read through the block's model again (defaults
        filled in, e.g. for a field a later release added); CompactFormatError if it is malformed."""
        obj = unpack_map(payload)
        job = cls.from_wire(request_from_map(obj))
        block = SOLVER_BLOCKS.get(job.solver)
        if block is None:
            raise CompactFormatError(f"the stored job names an unknown solver {job.solver!r}")
        try:
            job.parameters = block.model_validate(job.parameters).model_dump(mode="json")
        except ValidationError as exc:
            raise CompactFormatError(f"the stored job's {job.solver} block is invalid: {exc}") from None
        if obj.get("aux_pairs") is not None:
            aux = decode_array(obj["aux_pairs"], "aux_pairs")
            n_out = obj.get("num_output_variables")
            n = job.problem.num_variables
            if not isinstance(n_out, int) or aux.ndim != 2 or aux.shape[1] != 2 \
                    or aux.dtype.kind not in "iu" or n_out + len(aux) != n \
                    or (aux.size and (aux.min() < 0 or np.any(
                        aux.max(axis=1) >= n_out + np.arange(len(aux))))):
                raise CompactFormatError("aux_pairs must be (m, 2) earlier-variable indices and "
                                     "num_output_variables + m must equal num_variables")
            job.aux_pairs, job.num_output_variables = aux.astype(np.int64), n_out
        return job

"""``SpinOutSampler``: the service as a dimod sampler, for code written against D-Wave's Ocean API.

dimod is an optional dependency: ``import client`` never imports this module; importing it
without dimod raises an ImportError that says what to install.

Example::

    from client.sampler import SpinOutSampler
    sampler = SpinOutSampler("http://127.0.0.1:8000", solver="fujitsuDA3")
    sampleset = sampler.sample_ising({0: 1.0}, {(0, 1): -1.0}, time_limit=1)
    sampleset.first.energy
"""

from __future__ import annotations

import math
from typing import Any

try:
    import dimod
except ImportError as exc:  # pragma: no cover - dimod is installed in the dev environment
    raise ImportError("client.sampler needs dimod: pip install 'dimod>=0.12'") from exc

import numpy as np

from .wire import da as models
from .sync_client import SolverClient

#: Ocean-style keyword -> the DA parameter it sets, per solver family.
_TIME_PARAM = {"fujitsuDA3": "time_limit_sec"}
_READS_PARAM = {"fujitsuDA": "number_runs", "fujitsuDAMixedMode": "number_runs",
                "fujitsuDA2": "number_runs", "fujitsuDA2MixedMode": "number_runs",
                "fujitsuDAPT": "number_replicas", "fujitsuDA2PT": "number_replicas",
                "fujitsuDA3": "num_run"}


class SpinOutSampler(dimod.Sampler):
    """A ``dimod.Sampler`` that sends each BQM to a SpinOut service.

    Args:
        url: the service's base URL, or a ready ``SolverClient`` via ``client=``.
        solver: the DA solver block used for every sample call.
        client: an existing ``SolverClient`` (shared connection pool; not closed by the sampler).
        **client_kwargs: passed to ``SolverClient`` (api_key, timeouts, polling, retry).

    ``sample(bqm, time_limit=..., num_reads=..., seed=..., **da_params)``: ``time_limit`` (s,
    fujitsuDA3: rounded up to whole seconds), ``num_reads`` (runs/replicas), ``seed``
    (``random_seed``), and any DA parameter of the solver block by its DA name. SPIN models are
    solved as BINARY and returned in the model's own vartype with energies recomputed by dimod.
    """

    def __init__(self, url: str | None = None, *, solver: str = "fujitsuDA3",
                 client: SolverClient | None = None, **client_kwargs: Any) -> None:
        if solver not in models.SOLVER_BLOCKS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(models.SOLVER_BLOCKS)}")
        if client is None and url is None:
            raise ValueError("give the service url or a SolverClient")
        self.solver = solver
        self._owns_client = client is None
        self.client = client if client is not None else SolverClient(url, **client_kwargs)  # type: ignore[arg-type]
        block = models.SOLVER_BLOCKS[solver]
        self._parameters: dict[str, list[Any]] = {name: [] for name in block.model_fields}
        self._parameters.update({"time_limit": [], "num_reads": [], "seed": []})

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return self._parameters

    @property
    def properties(self) -> dict[str, Any]:
        return {"solver": self.solver, "url": self.client.base_url,
                "max_num_variables": models.BLOCK_GENERATION[self.solver].max_bits}

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SpinOutSampler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _da_params(self, time_limit: float | None, num_reads: int | None, seed: int | None,
                   params: dict[str, Any]) -> dict[str, Any]:
        out = dict(params)
        if time_limit is not None:
            key = _TIME_PARAM.get(self.solver)
            if key is None:
                raise ValueError(f"{self.solver} has no time limit; pass number_iterations instead")
            out[key] = max(1, math.ceil(time_limit))
        if num_reads is not None:
            out[_READS_PARAM[self.solver]] = num_reads
        if seed is not None:
            out["random_seed"] = seed
        return out

    def sample(self, bqm: dimod.BinaryQuadraticModel, *, time_limit: float | None = None,
               num_reads: int | None = None, seed: int | None = None,
               **parameters: Any) -> dimod.SampleSet:
        """Solve ``bqm`` on the service; the samples are its distinct solutions, best first."""
        if bqm.num_variables == 0:
            empty: dimod.SampleSet = dimod.SampleSet.from_samples([], bqm.vartype, energy=[])
            return empty
        result = self.client.solve(bqm, self.solver,
                                   **self._da_params(time_limit, num_reads, seed, parameters))
        labels = list(result.labels) if result.labels is not None else list(bqm.variables)
        samples: dimod.SampleSet = dimod.SampleSet.from_samples_bqm(
            (result.states.astype(np.int8), labels), bqm.change_vartype(dimod.BINARY, inplace=False),
            num_occurrences=result.frequencies,
            info={"timing": result.timing, "progress": result.progress, "solver": self.solver})
        converted: dimod.SampleSet = samples.change_vartype(bqm.vartype, inplace=False)
        return converted

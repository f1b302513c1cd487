"""Ising-Dropout (Salehinejad & Valaee, ICASSP 2019): unit masks chosen by minimising an Ising energy.

Between mini-batches (``before_step``, never inside ``forward``) the network's batch-mean
activations and current weights become a QUBO over the candidate units (``ising_energy``), a
solver (``ising_solver``: the embedded engine or a remote service) returns a 0/1 state, and the
state becomes the masks of the input (optional) and hidden layers. After the optimizer step
(``after_step``) the weights of dropped units are put back to their values before the step: the
paper's W* bookkeeping (Adam's momentum would otherwise keep moving them although their gradient
is zero).

Options (``--option key=value`` or the dedicated flags; the defaults depend on the energy):

============== ===================== =================== ==========================================
option          default (importance)  paper preset        meaning
============== ===================== =================== ==========================================
ising_energy    importance            paper               the formulation (see ``ising_energy``)
solve_every     8                     1                   re-solve every k mini-batches
num_sweeps      10                    100                 annealing steps (sweeps or trials) per solve
num_runs        1                     1                   annealing runs per solve
moves           sweep                 sweep               "sweep" or "trial" (DA dynamics)
temperature     0.1                   auto                start T / median |field|; auto = hot-to-cold
warm_start      true                  false               start from the previous state (else all 1)
full_sweeps     200                   -                   first solve (warm start on): full anneal
activation_ema  0.9                   0                   average abar over solves (0 = this batch)
async_solve     false                 false               solve on a worker thread, masks one period late
cost            0.5                   -                   per-unit keeping cost (x mean field)
keep_ratio      none                  -                   cardinality target per layer, e.g. 0.6
stickiness      0.05                  -                   bonus for the previous state (x mean field)
bias_weight     0                     1                   weight of the -b_u s_u term
solver          embedded              embedded            "embedded" or a service URL
api_key         $SPINOUT_API_KEY      $SPINOUT_API_KEY    key for a remote service
============== ===================== =================== ==========================================
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from service.engine import BinaryQuadraticProblem

from ..models import unit_broadcast
from .base import VariantModel, VariantSpec, build_network
from .ising_energy import EnergyOptions, IsingLayout, QuboBuilder
from .ising_solver import AnnealBudget, MaskSolver, make_solver
from .registry import register

#: Per-energy defaults of the options the paper leaves open.
PRESETS: dict[str, dict[str, Any]] = {
    "importance": {"solve_every": 8, "num_sweeps": 10, "num_runs": 1, "temperature": 0.1,
                   "warm_start": True, "activation_ema": 0.9},
    "paper": {"solve_every": 1, "num_sweeps": 100, "num_runs": 1, "temperature": None,
              "warm_start": False, "activation_ema": 0.0},
}


class UnitMask(nn.Module):
    """Multiplies a layer's units (features, or channels of (batch, C, H, W)) by a 0/1 mask held
    as a buffer (set from outside).

    Applied while training, and in eval mode too when ``apply_in_eval`` (the paper's
    training+inference mode). No 1/p rescaling: the masks are deterministic choices.
    """

    def __init__(self, num_units: int, apply_in_eval: bool) -> None:
        super().__init__()
        self.apply_in_eval = apply_in_eval
        self.register_buffer("mask", torch.ones(num_units))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training or self.apply_in_eval:
            return h * unit_broadcast(self.mask, h)
        return h

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return self.mask.detach().clone()

    def extra_repr(self) -> str:
        kept = int(self.mask.sum())
        return f"units={self.mask.numel()}, kept={kept}, apply_in_eval={self.apply_in_eval}"


#: Every option this variant reads; anything else in ``spec.options`` is a mistake.
KNOWN_OPTIONS = frozenset({
    "ising_energy", "solve_every", "num_sweeps", "num_runs", "moves", "temperature", "warm_start",
    "full_sweeps", "activation_ema", "async_solve", "cost", "keep_ratio", "cardinality_strength",
    "stickiness", "bias_weight", "mu", "sigma2", "solver", "api_key",
})


def _parse_keep_ratio(value: Any) -> float | list[float] | None:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "none"):
        return None
    try:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            parts = [float(v) for v in value.split(",") if v.strip()]
            return parts[0] if len(parts) == 1 else parts
        return [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"keep_ratio must be a fraction or a comma-separated list of them, got {value!r}") from exc


def _parse_temperature(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("auto", "none")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"temperature must be a number or 'auto', got {value!r}") from exc


class IsingDropout(VariantModel):
    """A network (MLP or CNN) whose input (optional) and hidden units or channels are masked by
    Ising-Dropout.

    Args:
        spec: model, sizes, include_input, mode and activation; ``spec.options`` as in the
            module table.
    """

    def __init__(self, spec: VariantSpec) -> None:
        unknown = sorted(set(spec.options) - KNOWN_OPTIONS)
        if unknown:
            raise ValueError(f"unknown ising option(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_OPTIONS))}")
        apply_in_eval = spec.mode == "train+infer"
        super().__init__(build_network(spec, gates=lambda layer, n: UnitMask(n, apply_in_eval)))
        energy = str(spec.option("ising_energy", "importance", str))
        if energy not in PRESETS:
            raise ValueError(f"ising_energy must be one of {sorted(PRESETS)}, got {energy!r}")
        preset = PRESETS[energy]
        self.energy_options = EnergyOptions(
            energy=energy,
            cost=spec.option("cost", 0.5, float),
            keep_ratio=_parse_keep_ratio(spec.options.get("keep_ratio")),
            cardinality_strength=spec.option("cardinality_strength", 10.0, float),
            stickiness=spec.option("stickiness", 0.05, float),
            bias_weight=spec.option("bias_weight", 0.0, float),
            mu=spec.option("mu", 0.5, float),
            sigma2=spec.option("sigma2", 0.01, float),
        )
        self.budget = AnnealBudget(
            num_runs=spec.option("num_runs", preset["num_runs"], int),
            num_sweeps=spec.option("num_sweeps", preset["num_sweeps"], int),
            temperature=_parse_temperature(spec.options.get("temperature", preset["temperature"])),
            warm_start=spec.option("warm_start", preset["warm_start"], bool),
            moves=spec.option("moves", "sweep", str),
            full_sweeps=spec.option("full_sweeps", 200, int),
        )
        self.solve_every = spec.option("solve_every", preset["solve_every"], int)
        self.activation_ema = spec.option("activation_ema", preset["activation_ema"], float)
        if not 0.0 <= self.activation_ema < 1.0:
            raise ValueError(f"activation_ema must be in [0, 1), got {self.activation_ema}")
        self._abar_ema: list[torch.Tensor] | None = None
        self.async_solve = spec.option("async_solve", False, bool)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[tuple[np.ndarray, dict[str, float]]] | None = None
        if self.solve_every < 1:
            raise ValueError(f"solve_every must be >= 1, got {self.solve_every}")
        self.mode = spec.mode
        self.seed = int(spec.seed)
        self.layout = IsingLayout(self.sizes, self.network.include_input)
        self.builder = QuboBuilder(self.layout, self.energy_options)
        self.solver_spec = str(spec.option("solver", "embedded", str))
        self.solver: MaskSolver = make_solver(self.solver_spec, self.budget,
                                             spec.option("api_key", None, str))
        self.state = np.ones(self.layout.num_variables, dtype=np.uint8)
        self.num_solves = 0
        self._timings = {"ising_build": 0.0, "transport": 0.0, "solve": 0.0, "solve_wait": 0.0,
                         "mask_bookkeeping": 0.0}
        self._snapshot: dict[int, tuple[torch.Tensor, torch.Tensor | None]] | None = None
        self._restore: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # ------------------------------------------------------------------ masks
    def candidate_masks(self) -> dict[int, torch.Tensor]:
        """Mask buffers of the candidate layers, by layer index."""
        return {layer: self.network.gates[layer].mask for layer in self.layout.layers}

    def set_state(self, state: np.ndarray) -> None:
        """Adopt a 0/1 state vector as the masks."""
        state = np.asarray(state, dtype=np.uint8).reshape(-1)
        if state.shape != (self.layout.num_variables,):
            raise ValueError(f"state must have {self.layout.num_variables} entries, got {state.shape}")
        self.state = state.copy()
        for layer, part in self.layout.split(state).items():
            self.network.gates[layer].mask.copy_(torch.from_numpy(part.astype(np.float32)))
        self._index_dropped()

    def _index_dropped(self) -> None:
        """Per connection, a 0/1 float mask of the weights (and biases) owned by dropped units:
        those leaving dropped source units, rows (kernels) and biases of dropped target units."""
        drop = {layer: torch.from_numpy((part == 0).astype(np.float32))
                for layer, part in self.layout.split(self.state).items() if not part.all()}
        self._restore = {}
        for index in range(len(self.network.connections)):
            cols, rows = drop.get(index), drop.get(index + 1)
            if cols is None and rows is None:
                continue
            w = self.network.owned_weight_mask(index, cols, rows)
            if rows is None and not bool(w.any()):
                continue  # pixels under a shared kernel own no weight
            self._restore[index] = (w, rows)

    def on_state_restored(self) -> None:
        """After the harness restores the best epoch's buffers, re-read the state from the masks."""
        parts = [self.network.gates[l].mask.detach().cpu().numpy() for l in self.layout.layers]
        self.state = (np.concatenate(parts) > 0.5).astype(np.uint8)
        self._index_dropped()

    # ------------------------------------------------------------------ the Ising step
    def build_problem(self, batch_x: torch.Tensor) -> BinaryQuadraticProblem:
        """The QUBO for this mini-batch from the current weights (W*) and batch-mean activations."""
        stats = self.network.network_stats(batch_x)
        abars = stats.mean_activations()
        if self.activation_ema > 0:
            if self._abar_ema is None:
                self._abar_ema = abars
            else:
                m = self.activation_ema
                self._abar_ema = [m * e + (1 - m) * a for e, a in zip(self._abar_ema, abars)]
            abars = self._abar_ema
        return self.builder.build(abars, stats.weights, stats.biases, previous=self.state)

    def solve_masks(self, batch_x: torch.Tensor, step: int) -> None:
        """Build this mini-batch's QUBO and adopt the solver's state as the masks.

        With ``async_solve`` the solve runs on a worker thread while training goes on: the state
        adopted here is the one submitted at the previous solve point (masks one period stale),
        and only the time spent waiting for it (``solve_wait``) is on the training path.
        """
        if self._pending is not None:
            t0 = time.perf_counter()
            state, timing = self._pending.result()
            self._pending = None
            self._timings["solve_wait"] += time.perf_counter() - t0
            self._adopt(state, timing)
        t0 = time.perf_counter()
        problem = self.build_problem(batch_x)
        self._timings["ising_build"] += time.perf_counter() - t0
        initial = (self.state if self.budget.warm_start else np.ones_like(self.state)).copy()
        full = self.num_solves == 0 and self.budget.warm_start
        seed = self.seed * 1_000_003 + step
        if self.async_solve:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ising-solve")
            self._pending = self._executor.submit(self.solver.solve, problem, initial, seed, full,
                                                  self.builder)
            return
        # The builder's CSR structure is fixed: it names it (a remote solver then need not compare).
        state, timing = self.solver.solve(problem, initial, seed=seed, full=full, structure=self.builder)
        self._adopt(state, timing)

    def _adopt(self, state: np.ndarray, timing: dict[str, float]) -> None:
        self._timings["solve"] += timing.get("solve", 0.0)
        self._timings["transport"] += timing.get("transport", 0.0)
        self.set_state(state)
        self.num_solves += 1

    def before_step(self, batch_x: torch.Tensor, step: int) -> None:
        """Algorithm 1: the first mini-batch trains with all ones; then every ``solve_every``
        mini-batches the masks are re-solved. Snapshots the weights W* the step must not move."""
        if step > 0 and step % self.solve_every == 0:
            self.solve_masks(batch_x, step)
        t0 = time.perf_counter()
        if self._restore:
            connections = self.network.connections
            self._snapshot = {i: (connections[i].weight.detach().clone(),
                                  None if connections[i].bias is None else connections[i].bias.detach().clone())
                              for i in self._restore}
        else:
            self._snapshot = None
        self._timings["mask_bookkeeping"] += time.perf_counter() - t0

    def after_step(self, batch_x: torch.Tensor, step: int) -> None:
        """W* = W x M + W* x (1 - M): dropped units keep their incoming and outgoing weights
        (their gradient is zero, but Adam's momentum would still move them). ``lerp_`` with a
        0/1 weight returns either end exactly, so kept weights are untouched bit for bit."""
        if self._snapshot is None:
            return
        t0 = time.perf_counter()
        with torch.no_grad():
            for index, (w_mask, b_mask) in self._restore.items():
                old_w, old_b = self._snapshot[index]
                lin = self.network.connections[index]
                lin.weight.lerp_(old_w, w_mask)
                if b_mask is not None and old_b is not None:
                    lin.bias.lerp_(old_b, b_mask)
        self._snapshot = None
        self._timings["mask_bookkeeping"] += time.perf_counter() - t0

    def timing_breakdown(self) -> dict[str, float]:
        return dict(self._timings)

    def finish_training(self, context: Any) -> None:
        self.close()
        context.log["ising"] = {"energy": self.energy_options.energy, "solves": self.num_solves,
                                "solve_every": self.solve_every, "num_sweeps": self.budget.num_sweeps,
                                "warm_start": self.budget.warm_start, "async_solve": self.async_solve,
                                "solver": self.solver_spec}

    def close(self) -> None:
        """Drop an in-flight solve (its masks would come too late) and release the solver."""
        if self._pending is not None:
            self._pending.cancel()
            try:
                self._pending.result()
            except Exception:  # noqa: BLE001 - a late failure no longer matters
                pass
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.solver.close()

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, energy={self.energy_options.energy}, "
                f"solve_every={self.solve_every}, solver={self.solver_spec}")


@register("ising", options=KNOWN_OPTIONS)
def build(spec: VariantSpec) -> nn.Module:
    """Ising-Dropout; ``spec.options`` as in this module's table."""
    return IsingDropout(spec)

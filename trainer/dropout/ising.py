"""Ising-Dropout (Salehinejad & Valaee, ICASSP 2019): unit masks chosen by minimising an Ising energy.

Between mini-batches (``before_step``, never inside ``forward``) the network's batch-mean
activations and current weights become a QUBO over the candidate units (``ising_energy``), a
solver (``ising_solver``: the embedded engine or a remote service) returns a 0/1 state, and the
state becomes the masks of the input (optional) and hidden layers. After the optimizer step
(``after_step``) the weights of dropped units are put back to their values before the step: the
paper's W* bookkeeping (Adam's momentum would otherwise keep moving them although their gradient
is zero).

Options (``--option key=value`` or the dedicated flags; the defaults depend on the energy, see
``PRESETS``: "saliency" below, the literal "paper" in the next column; the exact-K energies
"relevance-redundancy", "paper-repaired" and "loss-aware" take saliency's solver settings):

================== ===================== =================== ==================================="""

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
from .ising_controls import CONTROLS, shuffle_couplings, shuffle_mask
from .ising_diagnostics import solve_diagnostics, summarize_diagnostics
from .ising_energy import ENERGIES, EnergyOptions, IsingLayout, IsingProblem, QuboBuilder
from .ising_solver import AnnealBudget, MaskSolver, make_solver
from .mask_solvers import solve_in_groups
from .solve_audit import SolveAuditor
from .registry import register

#: Per-energy defaults of the options the paper leaves open.
_WARM = {"solve_every": 8, "num_sweeps": 10, "num_runs": 1, "temperature": 0.1, "warm_start": True,
         "activation_ema": 0.9}
PRESETS: dict[str, dict[str, Any]] = {
    "saliency": dict(_WARM),
    "paper": {"solve_every": 1, "num_sweeps": 100, "num_runs": 1, "temperature": None,
              "warm_start": False, "activation_ema": 0.0},
    "relevance-redundancy": dict(_WARM),
    "paper-repaired": dict(_WARM),
    "loss-aware": dict(_WARM),
}
assert set(PRESETS) == set(ENERGIES)


class UnitMask(nn.Module):
    """Multiplies a layer's units (features, or channels of (batch, C, H, W)) by a 0/1 mask held
    as a buffer (set from outside).

    Applied while training, and in eval mode too when ``apply_in_eval`` (the paper's
    training+inference mode). ``rescale``: kept units are multiplied by n / kept (inverted
    dropout, as Bernoulli dropout scales by 1 / (1 - p)), so that a layer's summed output keeps
    its scale when the mask is lifted at inference (training-only mode) and every method at the
    same K sees the same scaling; off, the paper's plain masks.
    """

    def __init__(self, num_units: int, apply_in_eval: bool, rescale: bool = False) -> None:
        super().__init__()
        self.apply_in_eval = apply_in_eval
        self.rescale = rescale
        self.register_buffer("mask", torch.ones(num_units))

    @property
    def scale(self) -> float:
        """The factor on kept units: n / kept with ``rescale``, else 1."""
        if not self.rescale:
            return 1.0
        kept = float(self.mask.sum())
        return float(self.mask.numel()) / kept if kept > 0 else 1.0

    @property
    def inference_scale(self) -> float:
        """The factor kept units carry in eval mode (what structured pruning folds into the next
        connection's weights)."""
        return self.scale if self.apply_in_eval else 1.0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training or self.apply_in_eval:
            scale = self.scale
            mask = self.mask if scale == 1.0 else self.mask * scale
            return h * unit_broadcast(mask, h)
        return h

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return self.mask.detach().clone()

    def extra_repr(self) -> str:
        kept = int(self.mask.sum())
        return (f"units={self.mask.numel()}, kept={kept}, apply_in_eval={self.apply_in_eval}, "
                f"rescale={self.rescale}")


#: Every option this variant reads; anything else in ``spec.options`` is a mistake.
KNOWN_OPTIONS = frozenset({
    "ising_energy", "solve_every", "num_sweeps", "num_runs", "moves", "temperature", "warm_start",
    "full_sweeps", "activation_ema", "async_solve", "cost", "keep_ratio", "exact_k",
    "cardinality_strength", "stickiness", "bias_weight", "alpha", "saturation_weight", "mu", "sigma2",
    "diagnostics_every", "solver", "api_key", "control", "audit_every", "rescale", "sample_temperature",
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
        energy = str(spec.option("ising_energy", "saliency", str))
        if energy not in PRESETS:
            raise ValueError(f"ising_energy must be one of {list(ENERGIES)}, got {energy!r}")
        preset = PRESETS[energy]
        energy_options = EnergyOptions(
            energy=energy,
            cost=spec.option("cost", 0.5, float),
            keep_ratio=_parse_keep_ratio(spec.options.get("keep_ratio")),
            exact_k=spec.option("exact_k", None, bool),
            cardinality_strength=spec.option("cardinality_strength", 10.0, float),
            stickiness=spec.option("stickiness", 0.05, float),
            bias_weight=spec.option("bias_weight", None, float),
            alpha=spec.option("alpha", 0.5, float),
            saturation_weight=spec.option("saturation_weight", 0.25, float),
            activation_ema=spec.option("activation_ema", preset["activation_ema"], float),
            mu=spec.option("mu", 0.5, float),
            sigma2=spec.option("sigma2", 0.01, float),
        )
        rescale = spec.option("rescale", bool(energy_options.exact_k), bool)
        super().__init__(build_network(spec, gates=lambda layer, n: UnitMask(n, apply_in_eval, rescale)))
        self.energy_options = energy_options
        self.budget = AnnealBudget(
            num_runs=spec.option("num_runs", preset["num_runs"], int),
            num_sweeps=spec.option("num_sweeps", preset["num_sweeps"], int),
            temperature=_parse_temperature(spec.options.get("temperature", preset["temperature"])),
            warm_start=spec.option("warm_start", preset["warm_start"], bool),
            moves=spec.option("moves", "sweep", str),
            full_sweeps=spec.option("full_sweeps", 200, int),
            sample_temperature=_parse_temperature(spec.options.get("sample_temperature")),
        )
        self.solve_every = spec.option("solve_every", preset["solve_every"], int)
        self.async_solve = spec.option("async_solve", False, bool)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[tuple[np.ndarray, dict[str, float]]] | None = None
        self._pending_problem: BinaryQuadraticProblem | None = None
        if self.solve_every < 1:
            raise ValueError(f"solve_every must be >= 1, got {self.solve_every}")
        self.diagnostics_every = spec.option("diagnostics_every", 10, int)
        if self.diagnostics_every < 0:
            raise ValueError(f"diagnostics_every must be >= 0 (0 = never), got {self.diagnostics_every}")
        self.diagnostics: list[dict[str, Any]] = []
        self.mode = spec.mode
        self.seed = int(spec.seed)
        self.layout = IsingLayout(self.sizes, self.network.include_input)
        self.builder = QuboBuilder(self.layout, self.energy_options)
        self.solver_spec = str(spec.option("solver", "embedded", str))
        self.solver: MaskSolver = make_solver(self.solver_spec, self.budget,
                                             spec.option("api_key", None, str))
        self.state = np.ones(self.layout.num_variables, dtype=np.uint8)
        self.control = str(spec.option("control", "none", str))
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {', '.join(CONTROLS)}, got {self.control!r}")
        self._control_rng = np.random.default_rng([self.seed, 0x5EED])
        self._layer_of = np.concatenate([np.full(self.sizes[l], l) for l in self.layout.layers])
        self._previous_batch: tuple[torch.Tensor, torch.Tensor | None] | None = None  # other-batch: the last solve point's
        self.auditor = SolveAuditor(spec.option("audit_every", 0, int),
                                    [self.layout.slice(l) for l in self.layout.layers])
        if self.auditor.every and self.async_solve:
            raise ValueError("audit_every needs synchronous solves (async_solve=false)")
        # The solver's own last answer: the warm start and the stickiness reference, also when a
        # control changes the mask that is applied.
        self.solver_state = self.state.copy()
        self.num_solves = 0
        self._kept_solves = np.zeros(self.layout.num_variables, dtype=np.int64)  # per unit, over solves
        self._timings = {"ising_build": 0.0, "transport": 0.0, "solve": 0.0, "solve_wait": 0.0,
                         "mask_bookkeeping": 0.0, "ising_diagnostics": 0.0}
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
        self.solver_state = self.state.copy()
        self._index_dropped()

    # ------------------------------------------------------------------ the Ising step
    def build_problem(self, batch_x: torch.Tensor, batch_y: torch.Tensor | None = None) -> IsingProblem:
        """This mini-batch's energy from the current weights (W*) and the network's statistics
        (with the per-sample gate gradients when the energy reads them, which needs the labels),
        and the exact-K groups its solver must hold."""
        needs_gradients = self.builder.needs_gate_gradients
        if needs_gradients and batch_y is None:
            raise ValueError(f"the {self.energy_options.energy} energy needs the mini-batch's labels")
        stats = self.network.network_stats(batch_x, batch_y if needs_gradients else None)
        return self.builder.build(stats, previous=self.solver_state)

    def solve_masks(self, batch_x: torch.Tensor, step: int, batch_y: torch.Tensor | None = None) -> None:
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
            assert self._pending_problem is not None
            self._adopt(state, timing, self._pending_problem)
        t0 = time.perf_counter()
        solve_batch, solve_labels = batch_x, batch_y
        if self.control == "other-batch":  # the previous solve point's batch, never this one
            if self._previous_batch is not None:
                solve_batch, solve_labels = self._previous_batch
            self._previous_batch = (batch_x, batch_y)
        problem, groups = self.build_problem(solve_batch, solve_labels)
        # The builder's CSR structure is fixed: it names it (a remote solver then need not compare).
        structure: Any = self.builder
        if self.control == "shuffled-couplings":
            problem, structure = shuffle_couplings(problem, self._layer_of, self._control_rng), None
        self._timings["ising_build"] += time.perf_counter() - t0
        initial = (self.solver_state if self.budget.warm_start else np.ones_like(self.state)).copy()
        full = self.num_solves == 0 and self.budget.warm_start
        seed = self.seed * 1_000_003 + step
        if self.async_solve:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ising-solve")
            self._pending = self._executor.submit(solve_in_groups, self.solver, problem, initial, seed,
                                                  full, structure, groups)
            self._pending_problem = problem
            return
        state, timing = solve_in_groups(self.solver, problem, initial, seed, full, structure, groups)
        if self.auditor.due(self.num_solves):
            self.auditor.audit(problem, initial, seed, groups, state, timing.get("solve", 0.0),
                               self.num_solves, step)
        self._adopt(state, timing, problem)

    def _adopt(self, state: np.ndarray, timing: dict[str, float], problem: BinaryQuadraticProblem) -> None:
        self._timings["solve"] += timing.get("solve", 0.0)
        self._timings["transport"] += timing.get("transport", 0.0)
        self.solver_state = np.asarray(state, dtype=np.uint8).copy()
        if self.control == "shuffled-mask":
            state = shuffle_mask(state, [self.layout.slice(l) for l in self.layout.layers],
                                 self._control_rng)
        self.set_state(state)
        self._kept_solves += self.state
        self.num_solves += 1
        if self.diagnostics_every and (self.num_solves - 1) % self.diagnostics_every == 0:
            t0 = time.perf_counter()
            rng = np.random.default_rng(self.seed * 1_000_003 + self.num_solves)
            record = solve_diagnostics(problem, self.layout, self.state, rng)
            record["solve"] = self.num_solves
            self.diagnostics.append(record)
            self._timings["ising_diagnostics"] += time.perf_counter() - t0

    def before_step(self, batch_x: torch.Tensor, step: int, batch_y: torch.Tensor | None = None) -> None:
        """Algorithm 1: the first mini-batch trains with all ones; then every ``solve_every``
        mini-batches the masks are re-solved. Snapshots the weights W* the step must not move.
        ``batch_y``: the labels (the loss-aware energy needs them)."""
        if step > 0 and step % self.solve_every == 0:
            self.solve_masks(batch_x, step, batch_y)
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
        o = self.energy_options
        context.log["ising"] = {"energy": o.energy, "solves": self.num_solves,
                                "solve_every": self.solve_every, "num_sweeps": self.budget.num_sweeps,
                                "warm_start": self.budget.warm_start, "async_solve": self.async_solve,
                                "solver": self.solver_spec, "control": self.control,
                                "exact_k": o.exact_k, "keep_counts": self.builder.counts,
                                "diagnostics": summarize_diagnostics(self.diagnostics),
                                "diagnostics_per_solve": list(self.diagnostics),
                                "audit_every": self.auditor.every, "audit": self.auditor.records,
                                "sample_temperature": self.budget.sample_temperature,
                                "keep_frequency": self.keep_frequency_summary()}

    def keep_frequency_summary(self) -> dict[str, Any]:
        """How often each unit was kept over the solves: per layer the mean, and the fraction of
        units kept in 10-90 % of solves (Boltzmann masks should put most units there; ground
        states, which settle, put them at 0 or 1)."""
        if self.num_solves == 0:
            return {}
        frequency = self._kept_solves / self.num_solves
        inside = (frequency >= 0.1) & (frequency <= 0.9)
        return {"solves": self.num_solves, "within_0.1_0.9": float(inside.mean()),
                "per_layer_within_0.1_0.9": {str(l): float(inside[self.layout.slice(l)].mean())
                                             for l in self.layout.layers}}

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
        self.auditor.close()

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, energy={self.energy_options.energy}, "
                f"solve_every={self.solve_every}, solver={self.solver_spec}")


@register("ising", options=KNOWN_OPTIONS)
def build(spec: VariantSpec) -> nn.Module:
    """Ising-Dropout; ``spec.options`` as in this module's table."""
    return IsingDropout(spec)

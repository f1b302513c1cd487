"""The Ising energies of Ising-Dropout: one mini-batch's :class:`NetworkStats` -> a QUBO over the units.

Candidates are the units of the input layer (optional) and of every hidden layer, numbered layer
by layer. Every energy reads only ``NetworkStats`` (activations per sample, effective weights,
biases, optionally per-sample gate gradients), so an MLP (units = neurons) and a CNN (units =
channels) get the same energies. The formulas and the reasons for them are in
``docs/ising-dropout.md``; in short:

``saliency``
    the saturation cost ``G`` of eqs. 2-3 taken as unsigned signal strength, couplings ``-G``
    between consecutive layers (all <= 0: submodular, a min cut solves it), a per-unit keeping
    cost, optionally a cardinality penalty.
``paper``
    eq. 5 literally: ``E(s) = -sum sgn(w) G s_u s_v - sum b_u s_u``. It collapses.
``relevance-redundancy``
    a feature-selection QUBO per layer (Muecke et al. 2023): relevance (non-saturation x
    outgoing weight norm x activation spread) on the diagonal, |correlation| of two units'
    activations (averaged over mini-batches) as positive couplings inside the layer.
``paper-repaired``
    eq. 5's saturation couplings with the sign the paper's text means (saturated excitatory
    connections cost energy), centred per layer pair, scaled by |w|, and a centred bias field.
``loss-aware``
    a second-order model of the loss change when gates close: gate gradients and their
    empirical Fisher products over all candidates (couples layers, mixed signs), plus a
    non-saturation field.

The three new energies hold each layer's kept count at K_l = round(keep_ratio x n_l) by default
(``exact_k``): the builder returns the problem together with the :class:`KHotGroups` the solver
must respect, and the energy carries no cardinality penalty.

Storage: the dense ``loss-aware`` energy is a dense matrix; the others are sparse, their pattern
(couplings between consecutive candidate layers and/or each layer's all-pairs block) fixed by
the layout, so each build writes its values straight into a precomputed CSR order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from service.engine import BinaryQuadraticProblem, KHotGroups

from .network_stats import NetworkStats

MU = 0.5
SIGMA2 = 0.01
ENERGIES = ("saliency", "paper", "relevance-redundancy", "paper-repaired", "loss-aware")
#: Energies whose per-layer kept counts are exact K-hot groups unless ``exact_k`` says otherwise.
EXACT_K_ENERGIES = ("relevance-redundancy", "paper-repaired", "loss-aware")
#: Kept fraction per layer when an exact-K energy gets no ``keep_ratio`` (drops 30 %, inside
#: the paper's reported 25-50 %).
DEFAULT_KEEP_RATIO = 0.7


def saturation_cost(abar: torch.Tensor, weight: torch.Tensor, mu: float = MU, sigma2: float = SIGMA2
                    ) -> torch.Tensor:
    """G(hhat) for every connection of one layer pair (eqs. 2-3).

    Args:
        abar: (n_in,) batch-mean activations of the source layer.
        weight: (n_out, n_in) weights as ``nn.Linear`` stores them.

    Returns:
        (n_in, n_out) costs in [0, 1): row i = source unit, column j = target unit.
    """
    hhat = torch.sigmoid(abar[:, None] * weight.t())
    return 1.0 - torch.exp(-(hhat - mu) ** 2 / (2.0 * sigma2))


def signed_couplings(abar: torch.Tensor, weight: torch.Tensor, mu: float = MU, sigma2: float = SIGMA2
                     ) -> torch.Tensor:
    """gamma_ij = sgn(w_ij) G(hhat_ij) (eq. 4), shape (n_in, n_out)."""
    return torch.sign(weight.t()) * saturation_cost(abar, weight, mu, sigma2)


def non_saturation(activations: torch.Tensor, activation: str, is_input: bool) -> torch.Tensor:
    """How far each unit is from saturation over the batch, in [0, 1], shape (n,).

    Sigmoid: mean 4 h (1 - h) (1 in the linear middle, 0 when stuck at 0 or 1). ReLU and SELU:
    the fraction of samples where the unit is active (h > 0; a dead unit passes no gradient).
    Input units and the identity have no non-linearity to saturate: 1.
    """
    n = activations.shape[1]
    if is_input or activation == "identity":
        return torch.ones(n, dtype=activations.dtype)
    if activation == "sigmoid":
        return (4.0 * activations * (1.0 - activations)).mean(0)
    return (activations > 0).to(activations.dtype).mean(0)


@dataclass
class EnergyOptions:
    """Knobs of the formulations.

    Attributes:
        energy: one of ``ENERGIES``.
        cost: saliency only: per-unit keeping cost as a fraction of the layer's mean field.
        keep_ratio: target kept fraction per candidate layer: one value or one per layer (the
            last repeats). With ``exact_k`` the count is exact; otherwise a cardinality penalty.
            None: no target (``DEFAULT_KEEP_RATIO`` when ``exact_k`` is on).
        exact_k: hold K_l = round(keep_ratio x n_l) units per layer as k-hot groups (the solver's
            constraint, no penalty). None: on for ``EXACT_K_ENERGIES``, off for the others.
        cardinality_strength: penalty lambda_l (sum_l s - K_l)^2 when ``exact_k`` is off and a
            keep ratio is given; lambda_l = strength x (the layer's field scale) / n_l.
        stickiness: bonus for keeping the previous state, as a fraction of the layer's field
            scale (all energies but ``paper``). The field scale is saliency's mean all-ones
            field, and for the new energies mean_u (|h_u| + sum_v |J_uv|).
        bias_weight: weight of the unit-bias field; None = the energy's own (0 for saliency,
            the literal 1 for paper, 1 for paper-repaired's centred field).
        alpha: relevance-redundancy: the weight of redundancy, 1 - alpha that of relevance.
        saturation_weight: loss-aware: the non-saturation field, as a fraction of each layer's
            mean |loss field|.
        activation_ema: moving average over mini-batches of the statistics the energy reads
            (batch means; relevance and |correlation|; gate gradients and Fisher products);
            0 = this mini-batch only.
        mu, sigma2: the Gaussian of eq. 3.
    """

    energy: str = "saliency"
    cost: float = 0.5
    keep_ratio: float | Sequence[float] | None = None
    exact_k: bool | None = None
    cardinality_strength: float = 10.0
    stickiness: float = 0.05
    bias_weight: float | None = None
    alpha: float = 0.5
    saturation_weight: float = 0.25
    activation_ema: float = 0.0
    mu: float = MU
    sigma2: float = SIGMA2

    def __post_init__(self) -> None:
        if self.energy not in ENERGIES:
            raise ValueError(f"ising energy must be one of {ENERGIES}, got {self.energy!r}")
        if self.cost < 0 or self.stickiness < 0 or self.cardinality_strength < 0:
            raise ValueError("cost, stickiness and cardinality_strength must be >= 0")
        if self.saturation_weight < 0:
            raise ValueError(f"saturation_weight must be >= 0, got {self.saturation_weight}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.activation_ema < 1.0:
            raise ValueError(f"activation_ema must be in [0, 1), got {self.activation_ema}")
        if self.sigma2 <= 0:
            raise ValueError(f"sigma2 must be > 0, got {self.sigma2}")
        ratios = self.keep_ratio
        if ratios is not None:
            values = [ratios] if isinstance(ratios, (int, float)) else list(ratios)
            if not values or any(not 0.0 < float(r) <= 1.0 for r in values):
                raise ValueError(f"keep_ratio values must be in (0, 1], got {ratios}")
        if self.exact_k is None:
            self.exact_k = self.energy in EXACT_K_ENERGIES
        if self.exact_k and self.keep_ratio is None:
            self.keep_ratio = DEFAULT_KEEP_RATIO

    def keep_ratio_for(self, index: int) -> float | None:
        """The kept fraction of the ``index``-th candidate layer (None: no target)."""
        ratios = self.keep_ratio
        if ratios is None:
            return None
        if isinstance(ratios, (int, float)):
            return float(ratios)
        ratios = list(ratios)
        return float(ratios[min(index, len(ratios) - 1)])

    def field_weight(self) -> float:
        if self.bias_weight is not None:
            return float(self.bias_weight)
        return {"paper": 1.0, "paper-repaired": 1.0}.get(self.energy, 0.0)


class IsingLayout:
    """Which layers are candidates and where each one's units sit in the state vector.

    Args:
        sizes: units of layers 0..N, then the output size (``GatedNetwork.sizes``).
        include_input: whether layer 0 is a candidate.
    """

    def __init__(self, sizes: Sequence[int], include_input: bool) -> None:
        self.sizes = list(sizes)
        first = 0 if include_input else 1
        self.layers = list(range(first, len(self.sizes) - 1))
        if not self.layers:
            raise ValueError(f"network {self.sizes} has no hidden layer to drop units from")
        self.offsets: dict[int, int] = {}
        pos = 0
        for layer in self.layers:
            self.offsets[layer] = pos
            pos += self.sizes[layer]
        self.num_variables = pos

    def slice(self, layer: int) -> slice:
        start = self.offsets[layer]
        return slice(start, start + self.sizes[layer])

    def pairs(self) -> list[tuple[int, int]]:
        """Consecutive candidate layer pairs (l-1, l), both candidates."""
        return [(l - 1, l) for l in self.layers if l - 1 in self.offsets]

    def split(self, state: np.ndarray) -> dict[int, np.ndarray]:
        return {l: state[self.slice(l)] for l in self.layers}

    def layer_of(self) -> np.ndarray:
        """(num_variables,) the layer index of every candidate unit."""
        return np.repeat(np.asarray(self.layers), [self.sizes[l] for l in self.layers])

    def keep_counts(self, options: EnergyOptions) -> list[int] | None:
        """K_l = round(keep_ratio x n_l), at least 1, per candidate layer (None without a target)."""
        if options.keep_ratio is None:
            return None
        counts = []
        for index, layer in enumerate(self.layers):
            ratio = options.keep_ratio_for(index)
            assert ratio is not None
            counts.append(min(self.sizes[layer], max(1, round(ratio * self.sizes[layer]))))
        return counts


class IsingProblem(NamedTuple):
    """A built energy: the QUBO, and the k-hot groups its solver must hold (None: free)."""

    problem: BinaryQuadraticProblem
    groups: KHotGroups | None


class QuboBuilder:
    """Builds the energy of one mini-batch from :class:`NetworkStats`.

    Sparse energies write their values straight into a CSR order computed once: the rows of
    layer l hold, left to right, the transposed block from layer l-1 (when the energy couples
    consecutive layers), the layer's own all-pairs block (relevance-redundancy, or a cardinality
    penalty) and the block to layer l+1, because the layers' columns are numbered in that order.
    The builder also keeps the moving averages of ``activation_ema`` between builds.

    Args:
        layout: candidate layers and their offsets.
        options: the formulation and its knobs.

    Attributes:
        groups: the exact-K groups (one per candidate layer, in state order), or None.
        counts: K_l per candidate layer, or None without a keep ratio.
    """

    def __init__(self, layout: IsingLayout, options: EnergyOptions) -> None:
        self.layout = layout
        self.options = options
        energy = options.energy
        self.counts = layout.keep_counts(options)
        self.groups: KHotGroups | None = None
        if options.exact_k:
            assert self.counts is not None
            self.groups = KHotGroups.consecutive([layout.sizes[l] for l in layout.layers], self.counts)
        self.cardinality = (not options.exact_k and energy != "paper" and self.counts is not None
                            and options.cardinality_strength > 0)
        self.dense = energy == "loss-aware"
        self.between = energy in ("saliency", "paper", "paper-repaired")
        self.within = self.cardinality or energy == "relevance-redundancy"
        self.pairs = layout.pairs() if self.between else []
        self._ema: dict[Any, Any] = {}
        if not self.dense:
            self._plan_csr()

    @property
    def needs_gate_gradients(self) -> bool:
        """Whether ``build`` reads ``NetworkStats.gate_gradients`` (and so the labels)."""
        return self.options.energy == "loss-aware"

    # ------------------------------------------------------------------ CSR layout
    def _plan_csr(self) -> None:
        layout = self.layout
        rows, cols = [], []
        for src, dst in self.pairs:
            r = np.arange(layout.sizes[src]) + layout.offsets[src]
            c = np.arange(layout.sizes[dst]) + layout.offsets[dst]
            rr, cc = np.meshgrid(r, c, indexing="ij")
            rows.append(rr.ravel())
            cols.append(cc.ravel())
        if self.within:
            for layer in layout.layers:
                idx = np.arange(layout.sizes[layer]) + layout.offsets[layer]
                rr, cc = np.triu_indices(idx.size, 1)
                rows.append(idx[rr])
                cols.append(idx[cc])
        n = layout.num_variables
        upper_r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        upper_c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        num_upper = upper_r.size
        sym_r = np.concatenate([upper_r, upper_c])
        sym_c = np.concatenate([upper_c, upper_r])
        tags = np.arange(1, 2 * num_upper + 1, dtype=np.float64)
        csr = sp.csr_array(sp.coo_array((tags, (sym_r, sym_c)), shape=(n, n)), shape=(n, n))
        csr.sort_indices()
        self.indptr = csr.indptr.copy()
        self.indices = csr.indices.copy()
        self.nnz = int(self.indptr[-1])
        order = csr.data.astype(np.int64) - 1
        perm = np.where(order < num_upper, order, order - num_upper)
        # Check once that the direct row-block layout is CSR order: fill it with pattern positions.
        pos_blocks, pos_within, start = [], {}, 0
        for src, dst in self.pairs:
            size = layout.sizes[src] * layout.sizes[dst]
            pos_blocks.append(np.arange(start, start + size, dtype=np.float64).reshape(
                layout.sizes[src], layout.sizes[dst]))
            start += size
        if self.within:
            for layer in layout.layers:
                n_l = layout.sizes[layer]
                full = np.zeros((n_l, n_l))
                rr, cc = np.triu_indices(n_l, 1)
                full[rr, cc] = full[cc, rr] = np.arange(start, start + rr.size)
                pos_within[layer] = full
                start += rr.size
        if not np.array_equal(self.fill(pos_blocks, pos_within).astype(np.int64), perm):
            raise AssertionError("the QUBO's CSR layout does not match its sparsity pattern")

    def fill(self, blocks: Sequence[np.ndarray], within: dict[int, Any]) -> np.ndarray:
        """CSR data from the layer-pair blocks (``blocks[k]`` is (n_src, n_dst) for the k-th pair
        of ``self.pairs``) and each layer's all-pairs value (a scalar or a symmetric (n_l, n_l)
        matrix whose diagonal is ignored)."""
        layout = self.layout
        data = np.empty(self.nnz, dtype=np.float64)
        pair_index = {pair: k for k, pair in enumerate(self.pairs)}
        for layer in layout.layers:
            n_l = layout.sizes[layer]
            first = self.indptr[layout.offsets[layer]]
            last = self.indptr[layout.offsets[layer] + n_l]
            if last == first:
                continue
            rows = data[first:last].reshape(n_l, -1)
            col = 0
            prev = pair_index.get((layer - 1, layer))
            if prev is not None:
                width = layout.sizes[layer - 1]
                rows[:, col:col + width] = blocks[prev].T
                col += width
            if self.within:
                value = within.get(layer, 0.0)
                if np.ndim(value) == 0:
                    rows[:, col:col + n_l - 1] = value
                else:
                    rows[:, col:col + n_l - 1] = value[~np.eye(n_l, dtype=bool)].reshape(n_l, n_l - 1)
                col += n_l - 1
            nxt = pair_index.get((layer, layer + 1))
            if nxt is not None:
                width = layout.sizes[layer + 1]
                rows[:, col:col + width] = blocks[nxt]
                col += width
        return data

    # ------------------------------------------------------------------ building
    def build(self, stats: NetworkStats, previous: np.ndarray | None = None) -> IsingProblem:
        """The energy of the current network and mini-batch.

        Args:
            stats: the network's view on this mini-batch (``gate_gradients`` required when
                ``needs_gate_gradients``).
            previous: the previous state (0/1), for the stickiness bonus.

        Raises:
            ValueError: the stats do not match the layout, or gate gradients are missing.
        """
        sizes = stats.sizes
        if sizes != self.layout.sizes[:len(sizes)] or len(sizes) != len(self.layout.sizes) - 1:
            raise ValueError(f"network stats for layers {sizes} do not match the layout "
                             f"{self.layout.sizes[:-1]}")
        n = self.layout.num_variables
        if self.dense:
            h, matrix, constant = self.dense_coefficients(stats, previous)
            return IsingProblem(BinaryQuadraticProblem(linear=h, couplings=matrix, constant=constant),
                                self.groups)
        h, blocks, within, constant = self.coefficients(stats, previous)
        csr = sp.csr_array((self.fill(blocks, within), self.indices, self.indptr), shape=(n, n))
        return IsingProblem(BinaryQuadraticProblem(linear=h, couplings=csr, constant=constant),
                            self.groups)

    def _smoothed(self, key: Any, value: Any) -> Any:
        """The moving average of ``value`` over builds (``activation_ema``; 0 = value itself)."""
        m = self.options.activation_ema
        old = self._ema.get(key)
        if m > 0 and old is not None:
            value = m * old + (1.0 - m) * value
        self._ema[key] = value
        return value

    def coefficients(self, stats: NetworkStats, previous: np.ndarray | None = None
                     ) -> tuple[np.ndarray, list[np.ndarray], dict[int, Any], float]:
        """(h, layer-pair blocks, each layer's all-pairs value, constant) of a sparse energy."""
        energy = self.options.energy
        if energy == "saliency":
            return self._saliency(stats, previous)
        h = np.zeros(self.layout.num_variables, dtype=np.float64)
        blocks: list[np.ndarray] = []
        within: dict[int, Any] = {}
        if energy == "paper":
            self._paper(stats, h, blocks)
            return h, blocks, within, 0.0
        if energy == "paper-repaired":
            self._paper_repaired(stats, h, blocks)
        else:
            self._relevance_redundancy(stats, h, within)
        constant = self._penalty_and_stickiness(h, blocks, within, previous)
        return h, blocks, within, constant

    # ------------------------------------------------------------------ the energies
    def _abars(self, stats: NetworkStats) -> list[torch.Tensor]:
        return [self._smoothed(("abar", l), a.double().mean(0)) for l, a in enumerate(stats.activations)]

    def _paper(self, stats: NetworkStats, h: np.ndarray, blocks: list[np.ndarray]) -> None:
        """eq. 5 literally: couplings -sgn(w) G, field -b_u (bias_weight scales it)."""
        o, layout = self.options, self.layout
        abars = self._abars(stats)
        for src, _dst in self.pairs:
            block = -signed_couplings(abars[src], stats.weights[src].double(), o.mu, o.sigma2)
            blocks.append(block.cpu().numpy())
        for layer in layout.layers:
            b = stats.biases[layer]
            if b is not None:
                h[layout.slice(layer)] -= o.field_weight() * b.double().cpu().numpy()

    def _saliency(self, stats: NetworkStats, previous: np.ndarray | None
                  ) -> tuple[np.ndarray, list[np.ndarray], dict[int, Any], float]:
        """-G / mean(G) per block, a keeping cost per unit, optional cardinality and stickiness."""
        layout, o = self.layout, self.options
        abars = self._abars(stats)
        h = np.zeros(layout.num_variables, dtype=np.float64)
        blocks = []
        for src, _dst in self.pairs:
            g = saturation_cost(abars[src], stats.weights[src].double(), o.mu, o.sigma2)
            blocks.append((-g / g.mean().clamp_min(1e-12)).cpu().numpy())
        if o.field_weight():
            for layer in layout.layers:
                b = stats.biases[layer]
                if b is not None:
                    h[layout.slice(layer)] -= o.field_weight() * b.double().cpu().numpy()
        field = np.zeros(layout.num_variables)  # each unit's all-ones coupling field, sign-flipped
        for (src, dst), b in zip(self.pairs, blocks):
            field[layout.slice(src)] -= b.sum(axis=1)
            field[layout.slice(dst)] -= b.sum(axis=0)
        within: dict[int, Any] = {}
        constant = 0.0
        for index, layer in enumerate(layout.layers):
            sl = layout.slice(layer)
            n_l = sl.stop - sl.start
            mean_field = float(field[sl].mean())
            scale = mean_field if mean_field > 1e-12 else 1.0
            h[sl] += o.cost * scale
            if self.cardinality:
                assert self.counts is not None
                lam = o.cardinality_strength * max(float(field[sl].max()), scale) / n_l
                constant += _add_cardinality(h, within, sl, layer, lam, o.keep_ratio_for(index) * n_l)
            if previous is not None and o.stickiness > 0:
                h[sl] -= o.stickiness * scale * (2.0 * previous[sl].astype(np.float64) - 1.0)
        return h, blocks, within, constant

    def _relevance_redundancy(self, stats: NetworkStats, h: np.ndarray, within: dict[int, Any]) -> None:
        """Per layer: h = -(1 - alpha) r / mean(r), J = alpha |corr| / (mean |corr| (K - 1))."""
        layout, o = self.layout, self.options
        for index, layer in enumerate(layout.layers):
            a = stats.activations[layer].double()
            spread = a.std(0, unbiased=False)
            nu = non_saturation(a, stats.activation, layer == 0)
            reach = stats.weights[layer].double().norm(dim=0)
            relevance = self._smoothed(("relevance", layer), nu * reach * spread)
            centred = a - a.mean(0)
            cov = centred.t() @ centred / a.shape[0]
            denom = spread[:, None] * spread[None, :]
            corr = torch.where(denom > 1e-24, cov / denom.clamp_min(1e-24), torch.zeros_like(cov))
            corr = corr.abs().clamp_max(1.0)
            corr.fill_diagonal_(0.0)
            redundancy = self._smoothed(("redundancy", layer), corr)
            n_l = a.shape[1]
            kept = self.counts[index] if self.counts is not None else n_l
            mean_r = float(relevance.mean())
            r = relevance.cpu().numpy() / mean_r if mean_r > 0 else np.zeros(n_l)
            mean_c = float(redundancy.sum()) / max(n_l * (n_l - 1), 1)
            c = redundancy.cpu().numpy() / (mean_c * max(kept - 1, 1)) if mean_c > 0 else np.zeros((n_l, n_l))
            h[layout.slice(layer)] -= (1.0 - o.alpha) * r
            within[layer] = o.alpha * c

    def _paper_repaired(self, stats: NetworkStats, h: np.ndarray, blocks: list[np.ndarray]) -> None:
        """J = |w| (sgn(w) G - median) / block mean, penalised when positive; centred bias field."""
        layout, o = self.layout, self.options
        abars = self._abars(stats)
        for src, _dst in self.pairs:
            w = stats.weights[src].double()
            signed = signed_couplings(abars[src], w, o.mu, o.sigma2)
            centred = signed - float(np.median(signed.cpu().numpy()))  # torch's median is the lower one
            block = w.t().abs() * centred
            norm = float(block.abs().mean())
            blocks.append((block / norm if norm > 0 else block).cpu().numpy())
        weight = o.field_weight()
        if not weight:
            return
        reach = _coupling_row_sums(layout, self.pairs, blocks)
        for layer in layout.layers:
            b = stats.biases[layer]
            if b is None:
                continue
            sl = layout.slice(layer)
            centred_b = b.double().cpu().numpy()
            centred_b = centred_b - np.median(centred_b)
            spread = float(np.abs(centred_b).mean())
            if spread > 0:
                h[sl] -= weight * float(reach[sl].mean()) * centred_b / spread

    def dense_coefficients(self, stats: NetworkStats, previous: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, float]:
        """loss-aware: (h, dense symmetric J, constant) with E(s) ~ the loss change of dropping
        the units where s = 0, plus the non-saturation field."""
        layout, o = self.layout, self.options
        if stats.gate_gradients is None:
            raise ValueError("the loss-aware energy needs the per-sample gate gradients")
        g = torch.cat([stats.gate_gradients[l].double() for l in layout.layers], dim=1)
        mean_g = self._smoothed("gate_gradient", g.mean(0)).cpu().numpy()
        fisher = self._smoothed("fisher", g.t() @ g / g.shape[0]).cpu().numpy()
        h, J, constant = loss_change_qubo(mean_g, fisher)
        for layer in layout.layers:
            sl = layout.slice(layer)
            scale = float(np.abs(h[sl]).mean())
            nu = non_saturation(stats.activations[layer].double(), stats.activation, layer == 0)
            h[sl] -= o.saturation_weight * scale * nu.cpu().numpy()
        within: dict[int, Any] = {}
        constant += self._penalty_and_stickiness(h, J, within, previous)
        for layer, value in within.items():
            sl = layout.slice(layer)
            block = J[sl, sl]
            block += value
            np.fill_diagonal(block, 0.0)
        return h, J, constant

    def _penalty_and_stickiness(self, h: np.ndarray, couplings: Any, within: dict[int, Any],
                                previous: np.ndarray | None) -> float:
        """The cardinality penalty (only without exact K) and the stickiness bonus of the new
        energies, both on each layer's own scale, ``mean_u (|h_u| + sum_v |J_uv|)`` before
        either is added; returns the constant the penalty adds.
        ``couplings``: the pair blocks (sparse energies) or the dense matrix."""
        layout, o = self.layout, self.options
        if isinstance(couplings, np.ndarray):
            reach = np.abs(couplings).sum(axis=1)
        else:
            reach = _coupling_row_sums(layout, self.pairs, couplings)
            for layer, value in within.items():
                reach[layout.slice(layer)] += np.abs(value).sum(axis=1)
        constant = 0.0
        for index, layer in enumerate(layout.layers):
            sl = layout.slice(layer)
            # A unit's typical field magnitude: what a kept unit's decision weighs.
            scale = float((np.abs(h[sl]) + reach[sl]).mean()) or 1.0
            if self.cardinality:
                n_l = sl.stop - sl.start
                lam = o.cardinality_strength * scale / n_l
                constant += _add_cardinality(h, within, sl, layer, lam, o.keep_ratio_for(index) * n_l)
            if previous is not None and o.stickiness > 0:
                h[sl] -= o.stickiness * scale * (2.0 * previous[sl].astype(np.float64) - 1.0)
        return constant


def loss_change_qubo(mean_gradient: np.ndarray, fisher: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The second-order loss change of closing gates, as a QUBO in the keep variables.

    With d = 1 - s the closed gates, ``dL(d) = -sum_u G_u d_u + 1/2 sum_{u,v} F_uv d_u d_v``.
    Substituting d = 1 - s: ``h_u = G_u - F_uu / 2 - sum_{v != u} F_uv``, ``J_uv = F_uv``,
    ``constant = -sum G + 1/2 sum_{u,v} F_uv`` (so E(all ones) = 0).

    Returns:
        (h, J with zero diagonal, constant).
    """
    diag = np.diag(fisher).copy()
    h = mean_gradient - 0.5 * diag - (fisher.sum(axis=1) - diag)
    J = np.array(fisher, dtype=np.float64)
    np.fill_diagonal(J, 0.0)
    J = 0.5 * (J + J.T)
    constant = float(-mean_gradient.sum() + 0.5 * fisher.sum())
    return h, J, constant


def _add_cardinality(h: np.ndarray, within: dict[int, Any], sl: slice, layer: int, lam: float,
                     k: float) -> float:
    """lam (sum s - K)^2 = lam [(1 - 2K) sum s + 2 sum_{u<v} s_u s_v + K^2]; returns lam K^2."""
    h[sl] += lam * (1.0 - 2.0 * k)
    within[layer] = within.get(layer, 0.0) + 2.0 * lam
    return lam * k * k


def _coupling_row_sums(layout: IsingLayout, pairs: Sequence[tuple[int, int]],
                       blocks: Sequence[np.ndarray]) -> np.ndarray:
    """sum_v |J_uv| over the layer-pair blocks, per unit."""
    reach = np.zeros(layout.num_variables)
    for (src, dst), b in zip(pairs, blocks):
        reach[layout.slice(src)] += np.abs(b).sum(axis=1)
        reach[layout.slice(dst)] += np.abs(b).sum(axis=0)
    return reach

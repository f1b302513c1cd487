"""The Ising energy of Ising-Dropout (paper eqs. 1-5), built vectorised in torch as a dense QUBO.

Candidates are the units of the input layer (optional) and of every hidden layer, numbered layer
by layer. For a connection from unit i of layer l-1 to unit j of layer l with weight w_ij:

    hhat_ij  = sigmoid(abar_i * w_ij)            abar_i = batch-mean activation of unit i (eq. 2)
    G_ij     = 1 - exp(-(hhat_ij - mu)^2 / (2 sigma'^2))        mu = 0.5, sigma'^2 = 0.01 (eq. 3)
    gamma_ij = sgn(w_ij) * G_ij                                                            (eq. 4)

Two formulations share these pieces (see ``docs/ising-dropout.md`` for the reasoning):

``paper``
    eq. 5 literally: E(s) = -sum gamma_uv s_u s_v - sum b_u s_u (b_u = the unit's bias, 0 for
    input units). It collapses: most units end up dropped.
``importance`` (the default)
    the saturation cost G taken as the strength of the batch's signal through a connection,
    unsigned, so a pair of kept units that pass signal lowers the energy; each block between two
    layers normalised to a mean of 1 so no layer pair dominates; a per-unit keeping cost rho_l
    (a fraction ``cost`` of the layer's mean all-ones field) that makes weak units drop; an
    optional cardinality term lambda_l (sum_l s - K_l)^2 that pins the kept fraction; and a
    stickiness bonus for the previous state so masks change only for a real energy gain.

The energy is returned as a sparse ``BinaryQuadraticProblem``, E(s) = s.h + sum_{u<v} J_uv s_u s_v + c:
only consecutive layers couple, so CSR storage keeps every engine step O(degree), not O(n).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from service.engine import BinaryQuadraticProblem

MU = 0.5
SIGMA2 = 0.01
ENERGIES = ("importance", "paper")


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


@dataclass
class EnergyOptions:
    """Knobs of the formulations; defaults are the documented default formulation.

    Attributes:
        energy: "importance" (default) or "paper".
        cost: importance only: per-unit keeping cost as a fraction of the layer's mean field.
        keep_ratio: importance only: target kept fraction per layer (None: no cardinality term);
            one value for all layers or one per candidate layer.
        cardinality_strength: lambda_l = strength x (largest all-ones field) / n_l; 10 holds the
            kept count within about 5 % of K.
        stickiness: bonus for keeping the previous state, as a fraction of the layer's mean field.
        bias_weight: weight of the unit-bias linear term (the paper's -b_u s_u); 1 in "paper".
        mu, sigma2: the Gaussian of eq. 3.
    """

    energy: str = "importance"
    cost: float = 0.5
    keep_ratio: float | Sequence[float] | None = None
    cardinality_strength: float = 10.0
    stickiness: float = 0.05
    bias_weight: float = 0.0
    mu: float = MU
    sigma2: float = SIGMA2

    def __post_init__(self) -> None:
        if self.energy not in ENERGIES:
            raise ValueError(f"ising energy must be one of {ENERGIES}, got {self.energy!r}")
        if self.cost < 0 or self.stickiness < 0 or self.cardinality_strength < 0:
            raise ValueError("cost, stickiness and cardinality_strength must be >= 0")
        if self.sigma2 <= 0:
            raise ValueError(f"sigma2 must be > 0, got {self.sigma2}")
        ratios = self.keep_ratio
        if ratios is not None:
            values = [ratios] if isinstance(ratios, (int, float)) else list(ratios)
            if any(not 0.0 < float(r) <= 1.0 for r in values):
                raise ValueError(f"keep_ratio values must be in (0, 1], got {ratios}")


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


def _keep_ratio_for(options: EnergyOptions, index: int) -> float | None:
    ratios = options.keep_ratio
    if ratios is None:
        return None
    if isinstance(ratios, (int, float)):
        return float(ratios)
    ratios = list(ratios)
    return float(ratios[min(index, len(ratios) - 1)])


class QuboBuilder:
    """Builds the energy of one mini-batch as a sparse QUBO, vectorised per layer pair.

    The sparsity pattern (couplings only between consecutive candidate layers, plus each layer's
    all-pairs block when a cardinality term is on) is fixed by the layout, so it is computed once;
    each build writes the values straight into CSR order: the rows of layer l hold, left to
    right, the transposed block from layer l-1, the layer's own all-pairs block (cardinality) and
    the block to layer l+1, because the layers' columns are numbered in that order.

    Args:
        layout: candidate layers and their offsets.
        options: the formulation and its knobs.
    """

    def __init__(self, layout: IsingLayout, options: EnergyOptions) -> None:
        self.layout = layout
        self.options = options
        self.cardinality = options.energy != "paper" and options.keep_ratio is not None \
            and options.cardinality_strength > 0
        rows, cols = [], []
        for src, dst in layout.pairs():
            r = np.arange(layout.sizes[src]) + layout.offsets[src]
            c = np.arange(layout.sizes[dst]) + layout.offsets[dst]
            rr, cc = np.meshgrid(r, c, indexing="ij")
            rows.append(rr.ravel())
            cols.append(cc.ravel())
        if self.cardinality:
            for layer in layout.layers:
                idx = np.arange(layout.sizes[layer]) + layout.offsets[layer]
                rr, cc = np.triu_indices(idx.size, 1)
                rows.append(idx[rr])
                cols.append(idx[cc])
        n = layout.num_variables
        upper_r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        upper_c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        self.num_upper = upper_r.size
        sym_r = np.concatenate([upper_r, upper_c])
        sym_c = np.concatenate([upper_c, upper_r])
        tags = np.arange(1, 2 * self.num_upper + 1, dtype=np.float64)
        csr = sp.csr_array(sp.coo_array((tags, (sym_r, sym_c)), shape=(n, n)))
        csr.sort_indices()
        self.indptr = csr.indptr.copy()
        self.indices = csr.indices.copy()
        self.nnz = int(self.indptr[-1])
        order = csr.data.astype(np.int64) - 1
        perm = np.where(order < self.num_upper, order, order - self.num_upper)
        # Check once that the direct row-block layout is CSR order: fill it with pattern positions.
        pos_blocks, pos_card, start = [], {}, 0
        for src, dst in layout.pairs():
            size = layout.sizes[src] * layout.sizes[dst]
            pos_blocks.append(np.arange(start, start + size, dtype=np.float64).reshape(
                layout.sizes[src], layout.sizes[dst]))
            start += size
        if self.cardinality:
            for layer in layout.layers:
                n_l = layout.sizes[layer]
                full = np.zeros((n_l, n_l))
                rr, cc = np.triu_indices(n_l, 1)
                full[rr, cc] = full[cc, rr] = np.arange(start, start + rr.size)
                pos_card[layer] = full
                start += rr.size
        if not np.array_equal(self.fill(pos_blocks, pos_card).astype(np.int64), perm):
            raise AssertionError("the QUBO's CSR layout does not match its sparsity pattern")

    def build(self, abars: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              biases: Sequence[torch.Tensor | None], previous: np.ndarray | None = None
              ) -> BinaryQuadraticProblem:
        """The QUBO of the current network and mini-batch.

        Args:
            abars: batch-mean activations; ``abars[l]`` for layer l (0 = input).
            weights: ``weights[l]`` is the (n_{l+1}, n_l) matrix from layer l to layer l+1.
            biases: ``biases[l]`` is the bias vector of layer l (None for the input).
            previous: the previous state (0/1), for the stickiness bonus.
        """
        h, blocks, card, constant = self.coefficients(abars, weights, biases, previous)
        data = self.fill(blocks, card)
        n = self.layout.num_variables
        csr = sp.csr_array((data, self.indices, self.indptr), shape=(n, n))
        return BinaryQuadraticProblem(linear=h, couplings=csr, constant=constant)

    def fill(self, blocks: Sequence[np.ndarray], card: dict[int, Any]) -> np.ndarray:
        """CSR data from the layer-pair blocks (``blocks[k]`` is (n_src, n_dst) for the k-th pair)
        and each layer's all-pairs value (a scalar or a symmetric (n_l, n_l) matrix)."""
        layout = self.layout
        data = np.empty(self.nnz, dtype=np.float64)
        pair_index = {pair: k for k, pair in enumerate(layout.pairs())}
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
            if self.cardinality:
                value = card.get(layer, 0.0)
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

    def coefficients(self, abars: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                     biases: Sequence[torch.Tensor | None], previous: np.ndarray | None = None
                     ) -> tuple[np.ndarray, list[np.ndarray], dict[int, float], float]:
        """(h, layer-pair blocks, each layer's all-pairs cardinality value, constant)."""
        layout, options = self.layout, self.options
        paper = options.energy == "paper"
        h = np.zeros(layout.num_variables, dtype=np.float64)
        blocks = []
        with torch.no_grad():
            for src, _dst in layout.pairs():
                if paper:
                    block = -signed_couplings(abars[src], weights[src], options.mu, options.sigma2)
                else:
                    g = saturation_cost(abars[src], weights[src], options.mu, options.sigma2)
                    block = -g / g.mean().clamp_min(1e-12)
                blocks.append(block.double().cpu().numpy())
            bias_weight = 1.0 if paper else options.bias_weight
            if bias_weight:
                for layer in layout.layers:
                    b = biases[layer] if layer < len(biases) else None
                    if b is not None:
                        h[layout.slice(layer)] -= bias_weight * b.double().cpu().numpy()
        card: dict[int, float] = {}
        constant = 0.0
        if paper:
            return h, blocks, card, constant
        # Importance formulation: each layer's mean all-ones field sets its scale.
        field = np.zeros(layout.num_variables)
        for (src, dst), b in zip(layout.pairs(), blocks):
            field[layout.slice(src)] -= b.sum(axis=1)
            field[layout.slice(dst)] -= b.sum(axis=0)
        for index, layer in enumerate(layout.layers):
            sl = layout.slice(layer)
            n_l = sl.stop - sl.start
            mean_field = float(field[sl].mean())
            scale = mean_field if mean_field > 1e-12 else 1.0
            h[sl] += options.cost * scale
            ratio = _keep_ratio_for(options, index)
            if self.cardinality and ratio is not None:
                lam = options.cardinality_strength * max(float(field[sl].max()), scale) / n_l
                k = ratio * n_l
                # lam (sum s - K)^2 = lam [(1 - 2K) sum s + 2 sum_{u<v} s_u s_v + K^2]
                h[sl] += lam * (1.0 - 2.0 * k)
                card[layer] = 2.0 * lam
                constant += lam * k * k
            if previous is not None and options.stickiness > 0:
                h[sl] -= options.stickiness * scale * (2.0 * previous[sl].astype(np.float64) - 1.0)
        return h, blocks, card, constant


def build_qubo(layout: IsingLayout, abars: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
               biases: Sequence[torch.Tensor | None], options: EnergyOptions,
               previous: np.ndarray | None = None) -> BinaryQuadraticProblem:
    """One-off convenience: ``QuboBuilder(layout, options).build(...)``."""
    return QuboBuilder(layout, options).build(abars, weights, biases, previous)


def reference_paper_qubo(sizes: Sequence[int], include_input: bool, abars: Sequence[torch.Tensor],
                         weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Slow, obvious loop over every connection: the test oracle for ``build_qubo(..., "paper")``."""
    import math

    layout = IsingLayout(sizes, include_input)
    n = layout.num_variables
    J = np.zeros((n, n))
    h = np.zeros(n)
    for src, dst in layout.pairs():
        w = weights[src]
        for i in range(sizes[src]):
            for j in range(sizes[dst]):
                wij = float(w[j, i])
                hhat = 1.0 / (1.0 + math.exp(-float(abars[src][i]) * wij))
                g = 1.0 - math.exp(-(hhat - MU) ** 2 / (2 * SIGMA2))
                sgn = (wij > 0) - (wij < 0)
                u, v = layout.offsets[src] + i, layout.offsets[dst] + j
                J[u, v] = J[v, u] = -sgn * g
    for layer in layout.layers:
        b = biases[layer]
        if b is not None:
            for j in range(sizes[layer]):
                h[layout.offsets[layer] + j] = -float(b[j])
    return h, J

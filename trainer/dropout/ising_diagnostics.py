"""What a solved Ising-Dropout problem says about itself: is there work for an annealer?

Three numbers per solve, all cheap next to the solve:

hardness ratio (per layer)
    ``mean_u sum_v |J_uv| / mean_u |h_u - median_l h|`` over the layer's units: how strong the
    couplings are against the spread of the fields. The median is taken out because inside an
    exact-K layer a common shift of the fields changes no decision. Near 0 the fields decide
    alone and keeping the top-K by field is exact; the annealer has nothing to do.
frustrated triangles (within each layer, and across layers)
    the fraction of sampled triangles of coupled units whose couplings cannot all be satisfied:
    in spin form (``s = (1 + sigma) / 2``, ``J s_u s_v -> J/4 sigma_u sigma_v``, i.e.
    ``E = -sum K sigma sigma`` with ``K = -J/4``) a triangle is frustrated when the product of its
    three K is negative, i.e. when the product of its three QUBO couplings is positive (three
    positive couplings, or one positive and two negative). Without frustration (and without
    exact-K groups) the energy has no competing constraints. NaN when no triangle was found.
realised drop rate (per layer)
    the fraction of the layer's units the state drops.

In a solve record (``solve_diagnostics``) a value that is NaN or infinite (no triangle found,
fields without spread) is None, so the record is plain JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.engine import BinaryQuadraticProblem

from .ising_energy import IsingLayout


def _couplings(problem: BinaryQuadraticProblem) -> Any:
    """The coupling matrix as stored (a dense ndarray or a CSR array): both index as J[u, v]
    with index arrays, and converting a dense one would cost more than the whole diagnosis."""
    return problem.couplings if problem.is_sparse else np.asarray(problem.couplings)


def hardness_ratios(problem: BinaryQuadraticProblem, layout: IsingLayout) -> dict[int, float]:
    """Per candidate layer, mean coupling row sum |J| over the mean |field - layer median|
    (inf when the fields are all equal but couplings exist, 0 without couplings)."""
    reach = np.asarray(abs(_couplings(problem)).sum(axis=1)).reshape(-1)
    h = np.asarray(problem.linear, dtype=np.float64)
    out = {}
    for layer in layout.layers:
        sl = layout.slice(layer)
        spread = float(np.abs(h[sl] - np.median(h[sl])).mean())
        strength = float(reach[sl].mean())
        out[layer] = strength / spread if spread > 0 else (float("inf") if strength > 0 else 0.0)
    return out


def _triangle_signs(couplings: Any, u: np.ndarray, v: np.ndarray, w: np.ndarray
                    ) -> tuple[int, int]:
    """(triangles among the triples, of which frustrated)."""
    if u.size == 0:
        return 0, 0
    juv = np.asarray(couplings[u, v]).reshape(-1)
    jvw = np.asarray(couplings[v, w]).reshape(-1)
    juw = np.asarray(couplings[u, w]).reshape(-1)
    coupled = (juv != 0) & (jvw != 0) & (juw != 0)
    frustrated = coupled & (np.sign(juv) * np.sign(jvw) * np.sign(juw) > 0)
    return int(coupled.sum()), int(frustrated.sum())


def _distinct_triples(rng: np.random.Generator, n: int, samples: int) -> np.ndarray:
    """Up to ``samples`` uniform triples of distinct indices below n (draws with a repeat are
    dropped, which keeps the rest uniform)."""
    t = rng.integers(0, n, size=(samples, 3))
    return t[(t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])]


def frustrated_fractions(problem: BinaryQuadraticProblem, layout: IsingLayout,
                         rng: np.random.Generator, samples: int = 500) -> dict[str, Any]:
    """Frustrated fraction of uniformly sampled triangles, inside each layer and across layers.

    Triples of distinct units are drawn uniformly (``samples`` inside each layer, ``samples``
    across, i.e. not all in one layer); those whose three pairs are all coupled are triangles,
    so the fractions estimate the frustrated share of all triangles of each kind.

    Returns:
        ``{"within": {layer: fraction}, "across": fraction, "triangles_within": {layer: count},
        "triangles_across": count}``; a fraction is NaN when no triangle was found.
    """
    couplings = _couplings(problem)
    within: dict[int, float] = {}
    found_within: dict[int, int] = {}
    for layer in layout.layers:
        sl = layout.slice(layer)
        n_l = sl.stop - sl.start
        if n_l < 3:
            within[layer], found_within[layer] = float("nan"), 0
            continue
        triples = _distinct_triples(rng, n_l, samples) + sl.start
        found, bad = _triangle_signs(couplings, triples[:, 0], triples[:, 1], triples[:, 2])
        within[layer], found_within[layer] = (bad / found if found else float("nan")), found
    n = layout.num_variables
    layer_of = layout.layer_of()
    triples = _distinct_triples(rng, n, samples)
    mixed = ~((layer_of[triples[:, 0]] == layer_of[triples[:, 1]])
              & (layer_of[triples[:, 1]] == layer_of[triples[:, 2]]))
    triples = triples[mixed]
    found, bad = _triangle_signs(couplings, triples[:, 0], triples[:, 1], triples[:, 2])
    return {"within": within, "across": bad / found if found else float("nan"),
            "triangles_within": found_within, "triangles_across": found}


def drop_rates(state: np.ndarray, layout: IsingLayout) -> dict[int, float]:
    """Per candidate layer, the fraction of its units the state drops."""
    return {layer: float(1.0 - np.asarray(part, dtype=np.float64).mean())
            for layer, part in layout.split(np.asarray(state).reshape(-1)).items()}


def solve_diagnostics(problem: BinaryQuadraticProblem, layout: IsingLayout, state: np.ndarray,
                      rng: np.random.Generator, samples: int = 500) -> dict[str, Any]:
    """One solve's record (JSON-ready: layers keyed ``"h0"``, ``"h1"``, ...): the energy reached,
    hardness ratio, frustrated triangle fractions and realised drop rate per layer."""
    frustration = frustrated_fractions(problem, layout, rng, samples)
    return {
        "energy": _finite(problem.energy(np.asarray(state, dtype=np.uint8))),
        "hardness": {f"h{l}": _finite(v) for l, v in hardness_ratios(problem, layout).items()},
        "frustrated_within": {f"h{l}": _finite(v) for l, v in frustration["within"].items()},
        "frustrated_across": _finite(frustration["across"]),
        "drop_rate": {f"h{l}": v for l, v in drop_rates(state, layout).items()},
    }


def _finite(value: float) -> float | None:
    """None for NaN and inf, so the record is plain JSON."""
    value = float(value)
    return value if np.isfinite(value) else None


def summarize_diagnostics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over solve records (missing values skipped; None when none), shaped as one record."""
    if not records:
        return {}

    def mean(values: list[float | None]) -> float | None:
        finite = [v for v in values if v is not None]
        return float(np.mean(finite)) if finite else None

    out: dict[str, Any] = {"solves": len(records)}
    for key, first in records[0].items():
        if key == "solve":  # the record's index, not a measurement
            continue
        if isinstance(first, dict):
            out[key] = {k: mean([r[key][k] for r in records]) for k in first}
        else:
            out[key] = mean([r[key] for r in records])
    return out

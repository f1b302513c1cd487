"""Kernels against slow, obvious Python references that replay the same random numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.engine import BinaryQuadraticProblem, Replicas
from service.engine import kernels

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
GOLDEN32 = 0x9E3779B9


def lowbias32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


class ReferenceRng:
    """xorshift64* in Python integers: the stream each replica's kernel generator produces."""

    def __init__(self, state: int) -> None:
        self.s = int(state)
        self.buffer: list[int] = []

    def _step(self) -> int:
        s = self.s
        s ^= s >> 12
        s ^= (s << 25) & MASK64
        s ^= s >> 27
        self.s = s
        return (s * 2685821657736338717) & MASK64

    def uniform(self) -> float:
        return (self._step() >> 11) / 9007199254740992.0

    def new_sweep(self) -> None:
        self.buffer = []  # kernels drop unused indices at every sweep / iteration

    def trial_uniforms(self, n: int) -> list[float]:
        """A parallel trial's u_i: the top 24 bits of lowbias32(seed + (i + 1) golden), seed the
        top half of one xorshift64* output."""
        seed = self._step() >> 32
        return [((lowbias32((seed + (i + 1) * GOLDEN32) & MASK32) >> 8) + 0.5) / 2**24
                for i in range(n)]

    def index(self) -> int:
        if not self.buffer:
            out = self._step()
            self.buffer = [(out >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
        return self.buffer.pop(0)


def accept(d: float, beta: float, rng: ReferenceRng) -> bool:
    """Metropolis by inverse CDF: an Exp(1) quantile at a uniform 16-bit grid point > beta d."""
    u = (rng.index() + 0.5) / 65536
    return float(np.float32(-math.log1p(-u))) > beta * d


@pytest.mark.parametrize("t", [-3.0, 0.0, 0.01, 0.5, 1.0, 3.0, 8.0])
def test_acceptance_tables_give_the_textbook_probabilities(t: float) -> None:
    metropolis = np.mean(kernels.METROPOLIS_TABLE > t)
    gibbs = np.mean(kernels.GIBBS_TABLE > t)
    assert metropolis == pytest.approx(min(1.0, math.exp(-t)), abs=2 / 65536)
    assert gibbs == pytest.approx(1.0 / (1.0 + math.exp(t)), abs=2 / 65536)


@pytest.mark.parametrize("t", [-1e6, -79.0, -50.0, -3.0, -0.2, 0.0, 1e-4, 0.3, 1.0, 5.0, 17.0,
                               60.0, 79.5, 1e6])
def test_parallel_trial_acceptance_matches_exp(t: float) -> None:
    """The trial kernel's branch-free float32 exp gives the Metropolis and Gibbs probabilities."""
    metropolis = 1.0 / float(kernels._inverse_acceptance(np.float32(t), False))
    gibbs = 1.0 / float(kernels._inverse_acceptance(np.float32(t), True))
    assert metropolis == pytest.approx(math.exp(-min(max(t, 0.0), 80.0)), rel=1e-5)
    assert gibbs == pytest.approx(1.0 / (1.0 + math.exp(min(max(t, -80.0), 80.0))), rel=1e-5)


def exact_choice_probabilities(p: np.ndarray) -> np.ndarray:
    """P(bit i flips) when each bit is accepted independently with p_i and one accepted bit is
    chosen uniformly: sum over the accepted sets containing i of P(set) / |set|."""
    n = p.size
    out = np.zeros(n)
    for mask in range(1, 1 << n):
        members = [i for i in range(n) if mask >> i & 1]
        weight = np.prod([p[i] if mask >> i & 1 else 1.0 - p[i] for i in range(n)])
        out[members] += weight / len(members)
    return out


@pytest.mark.parametrize("gibbs", [False, True])
def test_smallest_key_is_a_uniform_choice_among_the_accepted(gibbs: bool) -> None:
    """One number per bit decides acceptance and choice; the flipped bit's distribution must be
    the textbook one (accept independently, then pick uniformly), computed exactly here."""
    f = np.array([-1.0, 0.2, 0.7, 1.5, 3.0, 0.05], dtype=np.float32)
    x = np.zeros(f.size, dtype=np.uint8)
    fixed = np.zeros(f.size, dtype=np.uint8)
    beta = 1.3
    t = beta * f.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(t)) if gibbs else np.exp(-np.maximum(t, 0.0))
    draws = 200_000
    counts = np.zeros(f.size + 1)
    keys = np.empty(f.size, dtype=np.int32)
    seeds = np.random.default_rng(5).integers(0, 2**32, size=draws, dtype=np.uint64)
    for seed in seeds.astype(np.uint32):
        smallest = kernels._trial_keys(seed, f, x, fixed, beta, 0.0, gibbs, keys)
        counts[int(np.argmax(keys == smallest)) if smallest < kernels._ONE_BITS else f.size] += 1
    expected = np.append(exact_choice_probabilities(p), np.prod(1.0 - p))
    # Within 5 standard errors of the exact multinomial frequencies.
    se = np.sqrt(expected * (1.0 - expected) / draws)
    np.testing.assert_array_less(np.abs(counts / draws - expected), 5 * se + 1e-12)
    # A fixed bit is never chosen, even one that every rule would accept.
    fixed[0] = 1
    for seed in seeds[:2000].astype(np.uint32):
        smallest = kernels._trial_keys(seed, f, x, fixed, beta, 0.0, gibbs, keys)
        assert keys[0] == kernels._NEVER and (smallest >= kernels._ONE_BITS or keys[0] != smallest)


def reference_sweep(q_sym: np.ndarray, h: np.ndarray, x: np.ndarray, beta: float,
                    rng: ReferenceRng) -> None:
    rng.new_sweep()
    for i in range(x.size):
        field = h[i] + q_sym[i] @ x
        d = field if x[i] == 0 else -field
        if accept(d, beta, rng):
            x[i] ^= 1


def reference_trial(q_sym: np.ndarray, h: np.ndarray, x: np.ndarray, beta: float, offset: float,
                    rate: float, rng: ReferenceRng, gibbs: bool = False) -> float:
    """Every bit tried at once; among the accepted bits the one with the smallest u_i / p_i flips."""
    uniforms = rng.trial_uniforms(x.size)
    fields = h + q_sym @ x
    d = np.where(x == 0, fields, -fields)
    chosen = []
    for i, u in enumerate(uniforms):
        t = float(np.float32(beta)) * (float(d[i]) - float(np.float32(offset)))
        p = 1.0 / (1.0 + math.exp(min(t, 700.0))) if gibbs else math.exp(-max(t, 0.0))
        if u < p:
            chosen.append((u / p, i))
    if not chosen:
        return offset + rate
    x[min(chosen)[1]] ^= 1
    return 0.0


def integer_problem(n: int, storage: str, seed: int) -> BinaryQuadraticProblem:
    # Small integers keep float32 fields exact, so kernel and reference see identical deltas.
    rng = np.random.default_rng(seed)
    q = rng.integers(-4, 5, size=(n, n)).astype(float)
    return BinaryQuadraticProblem.from_qubo_matrix(q, storage=storage)


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("parallel", [True, False])
def test_sweeps_replay_the_reference(storage: str, parallel: bool) -> None:
    p = integer_problem(24, storage, seed=1)
    reps = Replicas(p, 3, seed=7, parallel=parallel)
    start = reps.states.copy()
    rng_start = [int(v) for v in reps.rng]
    schedule = np.array([0.05, 0.2, 0.5, 1.0, 2.0])
    reps.anneal(schedule, trial=False, offset_rate=0.0, gibbs=False)
    q_sym = p.couplings.toarray() if p.is_sparse else np.asarray(p.couplings, dtype=float)
    for r in range(3):
        x = start[r].copy()
        rng = ReferenceRng(rng_start[r])
        for beta in schedule:
            reference_sweep(q_sym, p.linear, x, beta, rng)
        np.testing.assert_array_equal(reps.states[r], x)
        assert int(reps.rng[r]) == rng.s


@pytest.mark.parametrize("gibbs", [False, True])
@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_parallel_trial_replays_the_reference(storage: str, gibbs: bool) -> None:
    p = integer_problem(20, storage, seed=2)
    reps = Replicas(p, 2, seed=3)
    start = reps.states.copy()
    rng_start = [int(v) for v in reps.rng]
    schedule = np.geomspace(0.05, 3.0, 60)
    reps.anneal(schedule, trial=True, offset_rate=1.5, gibbs=gibbs)
    q_sym = p.couplings.toarray() if p.is_sparse else np.asarray(p.couplings, dtype=float)
    for r in range(2):
        x = start[r].copy()
        rng = ReferenceRng(rng_start[r])
        offset = 0.0
        for beta in schedule:
            offset = reference_trial(q_sym, p.linear, x, beta, offset, 1.5, rng, gibbs)
        np.testing.assert_array_equal(reps.states[r], x)
        assert reps.offsets[r] == pytest.approx(offset)


def test_swap_follows_the_exchange_rule() -> None:
    ladder = np.array([0.1, 0.5, 1.0, 2.0])
    energies = np.array([5.0, -3.0, 2.0, 0.0])
    order = np.arange(4, dtype=np.int64)
    accepted = np.zeros(3, dtype=np.int64)
    state = np.uint64(12345)
    # Slots (0, 1): (0.1 - 0.5) * (5 - (-3)) < 0 -> random; slots (2, 3): (1 - 2) * (2 - 0) < 0.
    rng = ReferenceRng(int(state))
    expected = order.copy()
    for k in (0, 2):
        a, b = expected[k], expected[k + 1]
        x = (ladder[k] - ladder[k + 1]) * (energies[a] - energies[b])
        if x >= 0 or rng.uniform() < math.exp(x):
            expected[k], expected[k + 1] = b, a
    new_state = kernels.swap_replicas(ladder, order, energies, state, 0, accepted)
    np.testing.assert_array_equal(order, expected)
    assert int(new_state) == rng.s
    # A colder slot holding a higher energy always swaps: x = (b_k - b_k+1)(E_k - E_k+1) >= 0.
    order = np.array([0, 1, 2, 3], dtype=np.int64)
    kernels.swap_replicas(ladder, order, np.array([-10.0, 10.0, 0.0, 0.0]), state, 0, accepted)
    assert list(order[:2]) == [1, 0]


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("trial", [False, True])
def test_incremental_fields_match_recomputation_after_long_runs(storage: str, trial: bool) -> None:
    rng = np.random.default_rng(9)
    n = 120
    q = rng.normal(size=(n, n)) * (rng.random((n, n)) < (0.05 if storage == "sparse" else 1.0))
    p = BinaryQuadraticProblem.from_qubo_matrix(q, constant=3.0, storage=storage)
    reps = Replicas(p, 4, seed=11)
    reps.anneal(np.geomspace(0.1, 5.0, 3000), trial=trial, offset_rate=0.2, gibbs=False)
    exact_fields = p.local_fields(reps.states)
    tol = 1e-3 if not p.is_sparse else 1e-9  # dense fields are float32
    np.testing.assert_allclose(reps.fields, exact_fields, rtol=tol, atol=tol * np.abs(q).max() * n)
    np.testing.assert_allclose(reps.energies, p.energies(reps.states), rtol=1e-4, atol=1e-3)
    # The best state seen has (approximately) the energy that was tracked for it.
    np.testing.assert_allclose(reps.best_energies, p.energies(reps.best_states), rtol=1e-4, atol=1e-3)
    assert np.all(reps.best_energies <= reps.energies + 1e-9)


def test_fixed_bits_never_flip() -> None:
    p = integer_problem(16, "dense", seed=4)
    reps = Replicas(p, 4, seed=5, fixed={0: True, 3: False, 15: True})
    reps.anneal(np.full(200, 0.01), trial=False, offset_rate=0.0, gibbs=False)
    reps.anneal(np.full(200, 0.01), trial=True, offset_rate=1.0, gibbs=True)
    assert np.all(reps.states[:, 0] == 1) and np.all(reps.states[:, 3] == 0)
    assert np.all(reps.states[:, 15] == 1)

"""Numba kernels: Metropolis sweeps, the Digital Annealer's parallel trial, replica exchange.

Conventions shared by every kernel:
- a state is a row of uint8 0/1 values; ``fields[r, i] = h_i + sum_j J_ij x_j`` is kept up to
  date incrementally, so flipping bit i changes the energy by ``(1 - 2 x_i) * fields[r, i]``;
- couplings come dense (symmetric (n, n), zero diagonal) or as CSR arrays (indptr, indices,
  data) of the same symmetric matrix; each public kernel exists in both forms;
- each replica r has its own xorshift64* generator state ``rng[r]``, so results depend on the
  seed alone, never on the thread count;
- each call does a bounded chunk of work; the Python driver between calls checks deadlines
  and cancellation;
- every replica tracks the lowest energy it has SEEN and that state (``best_energy``,
  ``best_states``), not just where it ends.

The kernels import nothing but numpy and numba.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from llvmlite import ir
from numba import njit, prange, types as nbtypes
from numba.extending import intrinsic
from numpy.typing import NDArray

if TYPE_CHECKING:
    from numba.core.base import BaseContext
    from numba.core.dispatcher import Dispatcher
    from numba.core.typing.templates import Signature

# Array types of the kernels' arguments. The kernels are compiled per dtype: a dense problem's
# couplings and fields are float32, a sparse one's float64; CSR indices are int32, the
# constraints' int64.
_Bits = NDArray[np.uint8]
_Floats = NDArray[np.float64]
_Coefficients = NDArray[np.floating[Any]]
_Index = NDArray[np.integer[Any]]
_Table = NDArray[np.float32]
_Rng = NDArray[np.uint64]
#: (indptr, constraint, coefficient, weight): see ``_penalty_change``.
_Constraints = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]
#: (group_of, indptr, members, counts): k-hot groups, see ``_sweep_replica_grouped``.
_Int64s = NDArray[np.int64]
_Groups = tuple[_Int64s, _Int64s, _Int64s, _Int64s]
#: A replica's (generator state, energy, best energy, dynamic offset) after a run of steps.
_Step = tuple[np.uint64, float, float, float]
_F = TypeVar("_F", bound=Callable[..., object])

_U64 = np.uint64
_U32 = np.uint32
_F32 = np.float32

#: Acceptance by inverse-CDF tables: a move of energy change d at inverse temperature beta is
#: accepted iff table[k] > beta * d, k a uniform 16-bit index. With the quantiles of Exp(1),
#: P(accept) = exp(-beta d) for d > 0 and 1 otherwise (Metropolis); with those of the logistic
#: distribution, 1 / (1 + exp(beta d)) (Gibbs). One comparison, no branch, no exp; probabilities
#: are exact to 1 / 65,536, and below exp(-11.8) a move is never accepted.
TABLE_BITS = 16
_QUANTILES = (np.arange(1 << TABLE_BITS) + 0.5) / (1 << TABLE_BITS)
METROPOLIS_TABLE = (-np.log1p(-_QUANTILES)).astype(np.float32)
GIBBS_TABLE = np.log(_QUANTILES / (1.0 - _QUANTILES)).astype(np.float32)
# The parallel trial computes the same rules arithmetically (below); it tells them apart by the
# table it is handed: the Gibbs table starts negative, the Metropolis table at ~0.


@njit(cache=True, nogil=True, inline="always")
def _xorshift(s: np.uint64) -> np.uint64:
    """The xorshift64 state step; an output is the new state times ``_XORSHIFT_STAR``."""
    s ^= s >> _U64(12)
    s ^= s << _U64(25)
    s ^= s >> _U64(27)
    return s


_XORSHIFT_STAR = _U64(2685821657736338717)


@njit(cache=True, nogil=True, inline="always")
def _next_uniform(s: np.uint64) -> tuple[np.float64, np.uint64]:
    """xorshift64*: returns (u in [0, 1), new state)."""
    s = _xorshift(s)
    out = (s * _XORSHIFT_STAR) >> _U64(11)
    return np.float64(out) * (1.0 / 9007199254740992.0), s


@njit(cache=True, nogil=True, inline="always")
def _next_index(s: np.uint64, bits: np.uint64,
                left: int) -> tuple[np.uint64, np.uint64, np.uint64, int]:
    """A 16-bit table index; one generator step yields four (the top bits of xorshift64*).

    ``bits`` / ``left`` buffer the unused indices; callers start every sweep or iteration with
    ``left = 0`` so results do not depend on where a run is cut into kernel calls.
    """
    if left == 0:
        s = _xorshift(s)
        bits = s * _XORSHIFT_STAR
        left = 4
    k = bits >> _U64(48)
    bits = bits << _U64(16)
    return k, s, bits, left - 1


# ---------------------------------------------------------------------------- one replica
# Each flip returns the energy change. A dense flip adds the coupling row times a float32 sign
# (+1 when the bit turns on): one branch-free loop that vectorises, ~13 % faster on a 64-bit
# parallel trial than separate + and - loops, whose branch the processor mispredicts half the
# time. The sparse scatter does not vectorise, and there the multiply cost ~10 % on G1 sweeps.
@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _flip_dense(couplings: _Coefficients, x: _Bits, f: _Coefficients, i: int) -> float:
    sign = _F32(1 - 2 * np.int32(x[i]))
    d: float = sign * f[i]
    x[i] ^= 1
    row = couplings[i]
    for j in range(f.shape[0]):
        f[j] += sign * row[j]
    return d


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _flip_sparse(indptr: _Index, indices: _Index, data: _Coefficients, x: _Bits, f: _Coefficients,
                 i: int) -> float:
    up = x[i] == 0
    d: float = f[i] if up else -f[i]
    x[i] ^= 1
    if up:
        for k in range(indptr[i], indptr[i + 1]):
            f[indices[k]] += data[k]
    else:
        for k in range(indptr[i], indptr[i + 1]):
            f[indices[k]] -= data[k]
    return d


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _flip(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
          data: _Coefficients, x: _Bits, f: _Coefficients, i: int) -> float:
    """Flip bit i and update the local fields; returns the energy change."""
    if dense:
        return _flip_dense(couplings, x, f, i)
    return _flip_sparse(indptr, indices, data, x, f, i)


# ---------------------------------------------------------------------------- inequalities
# ``cons`` = (indptr, constraint, coefficient, weight): each bit's linear inequalities in CSC
# order (service.engine.constraints); ``lhs`` holds one replica's C left-hand sides, kept up to
# date on every flip, then two bookkeeping slots: lhs[C] the number of violated constraints and
# lhs[C + 1] 1.0 when the replica's best state is feasible. A state pays weight_c * max(0, lhs_c)
# for constraint c. A replica's best is its best feasible state once it has seen one (a small
# weight can make broken states cheaper), else its lowest energy. With no constraints the
# kernels compile a path without any of this (a closure constant below).
#: A left-hand side above this counts as violated in the kernels' bookkeeping.
VIOLATION = 1e-9
@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _penalty_change(cons: _Constraints, lhs: _Floats, x: _Bits, i: int) -> float:
    """Change of the inequality penalty if bit i flips: O(constraints bit i appears in)."""
    indptr, constraint, coefficient, weight = cons
    sign = 1.0 - 2.0 * np.float64(x[i])
    d = 0.0
    for k in range(indptr[i], indptr[i + 1]):
        c = constraint[k]
        old = lhs[c]
        d += weight[c] * (max(old + sign * coefficient[k], 0.0) - max(old, 0.0))
    return d


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _shift_lhs(cons: _Constraints, lhs: _Floats, x: _Bits, i: int) -> None:
    """Move the left-hand sides and the violation count for a flip of bit i (call before x[i]
    changes)."""
    indptr, constraint, coefficient, weight = cons
    count = weight.shape[0]
    sign = 1.0 - 2.0 * np.float64(x[i])
    for k in range(indptr[i], indptr[i + 1]):
        c = constraint[k]
        old = lhs[c]
        new = old + sign * coefficient[k]
        lhs[c] = new
        lhs[count] += np.float64(new > VIOLATION) - np.float64(old > VIOLATION)


@njit(cache=True, nogil=True, inline="always")
def _improves(cons: _Constraints, lhs: _Floats, e: float, best_e: float) -> bool:
    """Whether the current state (energy e) replaces the replica's best: a feasible state beats
    any broken one, then the lower energy wins. Marks the best's feasibility when it does."""
    count = cons[3].shape[0]
    feasible = lhs[count] < 0.5
    best_feasible = lhs[count + 1] > 0.5
    if feasible:
        better = e < best_e or not best_feasible
    else:
        better = e < best_e and not best_feasible
    if better:
        lhs[count + 1] = 1.0 if feasible else 0.0
    return better


@njit(cache=True, nogil=True, fastmath=True)
def _sweep_replica(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                   data: _Coefficients, x: _Bits, f: _Coefficients, beta: float, table: _Table,
                   fixed: _Bits, s: np.uint64, e: float, best_e: float,
                   best_x: _Bits) -> tuple[np.uint64, float, float]:
    """One sequential sweep over the free bits at inverse temperature beta.

    The best state seen is kept in ``best_x`` at O(1) a flip: the first new best of the sweep
    copies the state, later ones replay the flips made since the last best (a journal; a bit
    flips at most once a sweep). Copied at every improvement, a descent from a random state
    cost O(n) a flip: a 100,000-bit problem's first tempering round took 19 s."""
    bits = _U64(0)
    left = 0
    journal = np.empty(x.shape[0], dtype=np.int64)
    count = 0
    synced = False  # best_x equals x up to the journal's flips
    for i in range(x.shape[0]):
        if fixed[i]:
            continue
        d = f[i] if x[i] == 0 else -f[i]
        k, s, bits, left = _next_index(s, bits, left)
        if table[k] > beta * d:
            e += _flip(dense, couplings, indptr, indices, data, x, f, i)
            if synced:
                journal[count] = i
                count += 1
            if e < best_e:
                best_e = e
                if synced:
                    for j in range(count):
                        best_x[journal[j]] ^= 1
                else:
                    best_x[:] = x
                    synced = True
                count = 0
    return s, e, best_e


# The constrained kernels are written out beside the plain ones rather than folded into them
# behind a flag: the plain tempering loop ran 13-25 % slower per round with the shared versions
# (an unread constraint argument and pruned branches still cost a replica-step ~0.5 us).
@njit(cache=True, nogil=True, fastmath=True)
def _sweep_replica_constrained(dense: bool, couplings: _Coefficients, indptr: _Index,
                               indices: _Index, data: _Coefficients, cons: _Constraints,
                               lhs: _Floats, x: _Bits, f: _Coefficients, beta: float, table: _Table,
                               fixed: _Bits, s: np.uint64, e: float, best_e: float,
                               best_x: _Bits) -> tuple[np.uint64, float, float]:
    """``_sweep_replica`` with inequality constraints: each trial adds the flip's penalty
    change, each flip moves the left-hand sides, and the best is kept feasibility first."""
    bits = _U64(0)
    left = 0
    for i in range(x.shape[0]):
        if fixed[i]:
            continue
        penalty = _penalty_change(cons, lhs, x, i)
        d = (f[i] if x[i] == 0 else -f[i]) + penalty
        k, s, bits, left = _next_index(s, bits, left)
        if table[k] > beta * d:
            _shift_lhs(cons, lhs, x, i)
            e += _flip(dense, couplings, indptr, indices, data, x, f, i) + penalty
            if _improves(cons, lhs, e, best_e):
                best_e = e
                best_x[:] = x
    return s, e, best_e


# ---------------------------------------------------------------------------- k-hot groups
# ``groups`` = (group_of, indptr, members, counts) (service.engine.groups.KHotGroups): variable
# i belongs to group group_of[i] (-1: free), group g is members[indptr[g]:indptr[g + 1]] and
# holds counts[g] ones. Inside a group the move is a swap of one set member a and one unset
# member b, whose energy change is -f[a] + f[b] - J[a, b] (a off, then b on beside a's loss), so
# every state visited keeps every group's count. Like the constrained kernels, the grouped ones
# are written out beside the plain ones: the plain path compiles without any of this.
@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _coupling(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
              data: _Coefficients, a: int, b: int) -> float:
    """J[a, b]: a dense entry, or a binary search of CSR row a (sorted indices)."""
    if dense:
        value: float = couplings[a, b]
        return value
    lo = indptr[a]
    hi = indptr[a + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < b:
            lo = mid + 1
        else:
            hi = mid
    if lo < indptr[a + 1] and indices[lo] == b:
        found: float = data[lo]
        return found
    return 0.0


@njit(cache=True, nogil=True, fastmath=True)
def _sweep_replica_grouped(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                           data: _Coefficients, groups: _Groups, x: _Bits, f: _Coefficients,
                           beta: float, table: _Table, fixed: _Bits, s: np.uint64, e: float,
                           best_e: float, best_x: _Bits) -> tuple[np.uint64, float, float]:
    """``_sweep_replica`` with k-hot groups: one move attempt per variable, a flip for a free
    one, for a grouped one a swap with a uniformly drawn other member of its group (no move when
    both hold the same bit). The proposal is symmetric (the reverse swap is drawn with the same
    probability), so at a fixed beta each step keeps the Boltzmann distribution over the states
    that satisfy every group. The best is kept as in ``_sweep_replica`` (a bit may now flip
    several times a sweep: the journal holds up to two flips an attempt)."""
    group_of, gptr, members, _ = groups
    n = x.shape[0]
    bits = _U64(0)
    left = 0
    journal = np.empty(2 * n, dtype=np.int64)
    count = 0
    synced = False
    for i in range(n):
        if fixed[i]:
            continue
        g = group_of[i]
        if g < 0:
            d = f[i] if x[i] == 0 else -f[i]
            k, s, bits, left = _next_index(s, bits, left)
            if table[k] > beta * d:
                e += _flip(dense, couplings, indptr, indices, data, x, f, i)
                if synced:
                    journal[count] = i
                    count += 1
            else:
                continue
        else:
            lo = gptr[g]
            u, s = _next_uniform(s)
            j = members[lo + np.int64(u * (gptr[g + 1] - lo))]
            if x[j] == x[i]:
                continue
            a = i if x[i] else j
            b = j if x[i] else i
            d = f[b] - f[a] - _coupling(dense, couplings, indptr, indices, data, a, b)
            k, s, bits, left = _next_index(s, bits, left)
            if not table[k] > beta * d:
                continue
            e += _flip(dense, couplings, indptr, indices, data, x, f, a)
            e += _flip(dense, couplings, indptr, indices, data, x, f, b)
            if synced:
                journal[count] = a
                journal[count + 1] = b
                count += 2
        if e < best_e:
            best_e = e
            if synced:
                for m in range(count):
                    best_x[journal[m]] ^= 1
            else:
                best_x[:] = x
                synced = True
            count = 0
    return s, e, best_e


_GOLDEN32 = _U32(0x9E3779B9)


@njit(cache=True, nogil=True, inline="always")
def _hash32(x: np.uint32) -> np.uint32:
    """lowbias32 (C. Wellons' hash prospector): a strong 32-bit mix. 32-bit multiplies are one
    AVX2 instruction for 8 lanes; a 64-bit mix (SplitMix64) needs three for 4 lanes."""
    x = _U32(x ^ (x >> _U32(16)))
    x = _U32(x * _U32(0x7FEB352D))
    x = _U32(x ^ (x >> _U32(15)))
    x = _U32(x * _U32(0x846CA68B))
    return _U32(x ^ (x >> _U32(16)))


#: An intrinsic's code generator: (context, LLVM IR builder, signature, argument values) -> value.
_Codegen = Callable[["BaseContext", ir.IRBuilder, "Signature", Sequence[ir.Value]], ir.Value]


@intrinsic
def _float32_from_bits_intrinsic(typingctx: object,
                                 bits: nbtypes.Type) -> tuple[Signature, _Codegen]:
    """Reinterpret an int32 as float32 (builds powers of two without a table lookup)."""
    def codegen(context: BaseContext, builder: ir.IRBuilder, signature: Signature,
                args: Sequence[ir.Value]) -> ir.Value:
        return builder.bitcast(args[0], ir.FloatType())
    return nbtypes.float32(nbtypes.int32), codegen


@intrinsic
def _bits_from_float32_intrinsic(typingctx: object,
                                 value: nbtypes.Type) -> tuple[Signature, _Codegen]:
    """Reinterpret a float32 as int32: for positive floats the order is the same, and LLVM
    vectorises an integer min-reduction (a float one it left scalar)."""
    def codegen(context: BaseContext, builder: ir.IRBuilder, signature: Signature,
                args: Sequence[ir.Value]) -> ir.Value:
        return builder.bitcast(args[0], ir.IntType(32))
    return nbtypes.int32(nbtypes.float32), codegen


# How the kernels call the intrinsics: numba's stubs type an intrinsic as uncallable, which it is
# from Python, and the cast gives mypy the signature the jitted code sees.
_float32_from_bits = cast(Callable[[np.int32], np.float32], _float32_from_bits_intrinsic)
_bits_from_float32 = cast(Callable[[np.float32], np.int32], _bits_from_float32_intrinsic)


def _njit_without_nrt(**options: bool) -> Callable[[_F], Dispatcher[_F]]:
    """``njit(_nrt=False, **options)``: compiled without numba's reference counting."""
    # _nrt is a private numba option, left out of numba's stubs.
    jit: Callable[[_F], Dispatcher[_F]] = njit(_nrt=False, **options)  # type: ignore[call-overload]
    return jit


_LOG2E = _F32(1.4426950408889634)
_LN2 = _F32(0.6931471805599453)
#: The trial's cost t = beta (dE - offset) is clamped to [-T, T]: a move of t > 80 is accepted
#: with probability < 2^-115, i.e. never; below -80 a Gibbs move is always accepted.
_T_MAX = _F32(80.0)
#: Bits of the largest finite float32: the key of a bit that must never flip.
_NEVER = np.int32(0x7F7FFFFF)
#: Bits of 1.0f: a key below it is an accepted move.
_ONE_BITS = np.int32(0x3F800000)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _exp(t: np.float32) -> np.float32:
    """e^t in float32 for -80 <= t <= 80, relative error < 5e-6; branch-free so it vectorises.

    e^t = 2^n * 2^(y - n) with y = t log2(e), n = floor(y); the fraction by a degree-5 Taylor
    polynomial of exp around 2^0.5 (|r| <= ln(2) / 2: remainder < 3e-6, about the float32
    rounding of y), the power of two from its exponent bits.
    """
    y = t * _LOG2E
    n = np.int32(np.floor(y))
    r = (y - _F32(n) - _F32(0.5)) * _LN2
    p = _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    return p * _F32(1.4142135623730951) * _float32_from_bits((np.int32(127) + n) << np.int32(23))


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _inverse_acceptance(t: np.float32, gibbs: bool) -> np.float32:
    """1 / P(accept) of a move costing t = beta * dE: e^max(t, 0) (Metropolis), 1 + e^t (Gibbs)."""
    if gibbs:
        return _F32(1.0) + _exp(min(max(t, -_T_MAX), _T_MAX))
    return _exp(min(max(t, _F32(0.0)), _T_MAX))


@njit(cache=True, nogil=True, inline="always")
def _iteration_seed(s: np.uint64) -> tuple[np.uint32, np.uint64]:
    """A parallel-trial iteration's seed for its counter hashes: the top half of one xorshift64*
    output. Returns (seed, new generator state)."""
    s = _xorshift(s)
    return _U32((s * _XORSHIFT_STAR) >> _U64(32)), s


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _make_trial_move(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                     data: _Coefficients, x: _Bits, f: _Coefficients, a: int, b: int, d: float,
                     e: float, best_e: float, best_x: _Bits,
                     pending: bool) -> tuple[float, float, bool]:
    """Flip bit a, and bit b too when b >= 0 (a swap): an iteration's accepted move, of energy
    change d. Returns (e, best_e, pending).

    ``pending``: x is the best state seen but not yet copied to best_x. The copy is made only
    when a move leaves it (or at the end of the run), so a descent copies once at its bottom,
    not at every step. ``dense`` is a closure constant of the callers, so the other storage's
    flip compiles away."""
    if pending and e + d >= best_e:
        best_x[:] = x  # leaving the best state seen
        pending = False
    e += _flip(dense, couplings, indptr, indices, data, x, f, a)
    if b >= 0:
        e += _flip(dense, couplings, indptr, indices, data, x, f, b)
    if e < best_e:
        best_e = e
        pending = True
    return e, best_e, pending


@njit(cache=True, nogil=True, inline="always")
def _trial_uniform(seed: np.uint32, i: int) -> np.float32:
    """u_i in (0, 1) of bit i: the top 24 bits of lowbias32(seed + (i + 1) golden), a counter
    hash, so the words do not depend on each other and the loop over bits vectorises."""
    w = _hash32(_U32(seed + _U32(_U32(i + 1) * _GOLDEN32)))
    return (_F32(np.int32(w >> _U32(8))) + _F32(0.5)) * _F32(1.0 / 16777216.0)


# The parallel trial's vectorised loop is a separate (not inlined) function, without reference
# counting: inlined into the iteration's control flow, LLVM left it scalar (measured 5x slower).
@_njit_without_nrt(cache=True, nogil=True, fastmath=True)
def _trial_keys(seed: np.uint32, f: _Coefficients, x: _Bits, fixed: _Bits, beta: float,
                offset: float, gibbs: bool, keys: NDArray[np.int32]) -> np.int32:
    """Every bit's key k_i = u_i / P_i (as float32 bits into ``keys``); returns the smallest.

    Bit i is accepted iff u_i < P_i, i.e. k_i < 1, P_i the acceptance probability of
    t = beta * (dE_i - offset). Given the accepted set, each accepted k_i is uniform on (0, 1)
    and independent of the others, so the smallest key is a uniform choice among the accepted
    bits: one random number per bit decides both acceptance and choice, with no division (1 / P
    is an exp itself) and no gather. Two loops, each with a constant ``gibbs``, so that both
    vectorise. The energy change is a select, not f * (1 - 2x): numba does integer arithmetic
    in 64 bits, which halved the vector width of that step (the select: 5-10 % faster).
    """
    b = _F32(beta)
    o = _F32(offset)
    smallest = _NEVER
    if gibbs:
        for i in range(x.shape[0]):
            t = b * ((-_F32(f[i]) if x[i] else _F32(f[i])) - o)
            k = _bits_from_float32(_trial_uniform(seed, i) * _inverse_acceptance(t, True))
            k = _NEVER if fixed[i] else k
            keys[i] = k
            smallest = min(smallest, k)
    else:
        for i in range(x.shape[0]):
            t = b * ((-_F32(f[i]) if x[i] else _F32(f[i])) - o)
            k = _bits_from_float32(_trial_uniform(seed, i) * _inverse_acceptance(t, False))
            k = _NEVER if fixed[i] else k
            keys[i] = k
            smallest = min(smallest, k)
    return smallest


# A separate function, not a flag of the one above: with an extra (unread) penalty array in its
# signature the plain loop ran ~20 % slower on a dense 1,024-bit problem.
@_njit_without_nrt(cache=True, nogil=True, fastmath=True)
def _trial_keys_penalised(seed: np.uint32, f: _Coefficients, x: _Bits, pen: _Floats, fixed: _Bits,
                          beta: float, offset: float, gibbs: bool,
                          keys: NDArray[np.int32]) -> np.int32:
    """``_trial_keys`` with bit i's energy change dE_i + pen[i] (its inequality penalty change)."""
    b = _F32(beta)
    o = _F32(offset)
    smallest = _NEVER
    for i in range(x.shape[0]):
        t = b * ((-_F32(f[i]) if x[i] else _F32(f[i])) + _F32(pen[i]) - o)
        k = _bits_from_float32(_trial_uniform(seed, i) * _inverse_acceptance(t, gibbs))
        k = _NEVER if fixed[i] else k
        keys[i] = k
        smallest = min(smallest, k)
    return smallest


@_njit_without_nrt(cache=True, nogil=True)
def _first_index(keys: NDArray[np.int32], key: np.int32) -> int:
    """The first i with keys[i] == key (one exists): a min-reduction over every bit, which
    vectorises, where a scalar search stopping at the match did not (1.15x on a 64-bit job)."""
    n = keys.shape[0]
    first: int = n
    for i in range(n):
        first = min(first, i if keys[i] == key else n)
    return first


def _trial_run(dense_storage: bool) -> Dispatcher[Callable[..., _Step]]:
    """The parallel trial's loop over a schedule for one coupling storage.

    The storage is a closure constant, so the other storage's flip is compiled away: with a
    runtime branch between them, even one LLVM could predict, the 64-bit iteration was ~12 %
    slower. The whole loop is one compiled function: as an inlined per-iteration step returning
    a tuple, the same code ran 1.7x slower.
    """
    @njit(cache=True, nogil=True, fastmath=True)
    def run(couplings: _Coefficients, indptr: _Index, indices: _Index, data: _Coefficients,
            x: _Bits, f: _Coefficients, schedule: _Floats, offset_rate: float, gibbs: bool,
            fixed: _Bits, s: np.uint64, e: float, best_e: float, best_x: _Bits,
            offset: float) -> _Step:
        """One Digital Annealer iteration per inverse temperature of ``schedule``: every bit is
        tried at once, one accepted bit flips. Returns (s, e, best_e, offset).

        The trial energy is dE_i - offset; when no bit is accepted the dynamic offset grows by
        ``offset_rate`` (escape from local minima), and it resets to 0 after a flip. The top
        half of one xorshift64* output seeds each iteration's random words; the accepted bit
        with the smallest key flips (a uniform choice among the accepted, see ``_trial_keys``).

        The best state seen is copied lazily (``pending``, see ``_make_trial_move``).
        """
        keys = np.empty(x.shape[0], dtype=np.int32)
        pending = False
        for t in range(schedule.shape[0]):
            seed, s = _iteration_seed(s)
            smallest = _trial_keys(seed, f, x, fixed, schedule[t], offset, gibbs, keys)
            if smallest >= _ONE_BITS:
                offset += offset_rate
                continue
            offset = 0.0
            i = _first_index(keys, smallest)
            e, best_e, pending = _make_trial_move(dense_storage, couplings, indptr, indices, data,
                                                  x, f, i, -1, f[i] if x[i] == 0 else -f[i], e,
                                                  best_e, best_x, pending)
        if pending:
            best_x[:] = x
        return s, e, best_e, offset

    return run


_trials_dense = _trial_run(True)
_trials_sparse = _trial_run(False)


def _trial_run_constrained(dense_storage: bool) -> Dispatcher[Callable[..., _Step]]:
    """``_trial_run`` with inequality constraints: each iteration first computes every bit's
    penalty change (O(constraint entries)), the keys see dE + penalty, a flip moves the
    left-hand sides, and the best is kept feasibility first (copied at once)."""
    @njit(cache=True, nogil=True, fastmath=True)
    def run(couplings: _Coefficients, indptr: _Index, indices: _Index, data: _Coefficients,
            cons: _Constraints, lhs: _Floats, x: _Bits, f: _Coefficients, schedule: _Floats,
            offset_rate: float, gibbs: bool, fixed: _Bits, s: np.uint64, e: float, best_e: float,
            best_x: _Bits, offset: float) -> _Step:
        keys = np.empty(x.shape[0], dtype=np.int32)
        pen = np.empty(x.shape[0])
        for t in range(schedule.shape[0]):
            seed, s = _iteration_seed(s)
            for j in range(x.shape[0]):
                pen[j] = _penalty_change(cons, lhs, x, j)
            smallest = _trial_keys_penalised(seed, f, x, pen, fixed, schedule[t], offset, gibbs,
                                             keys)
            if smallest >= _ONE_BITS:
                offset += offset_rate
                continue
            offset = 0.0
            i = _first_index(keys, smallest)
            penalty = pen[i]
            _shift_lhs(cons, lhs, x, i)
            if dense_storage:
                e += _flip_dense(couplings, x, f, i) + penalty
            else:
                e += _flip_sparse(indptr, indices, data, x, f, i) + penalty
            if _improves(cons, lhs, e, best_e):
                best_e = e
                best_x[:] = x
        return s, e, best_e, offset

    return run


_trials_dense_constrained = _trial_run_constrained(True)
_trials_sparse_constrained = _trial_run_constrained(False)


#: Mixed into an iteration's seed for the swap partners' hashes.
_PARTNER_SALT = _U32(0x5BD1E995)


def _trial_run_grouped(dense_storage: bool) -> Dispatcher[Callable[..., _Step]]:
    """``_trial_run`` with k-hot groups. Each iteration tries every free bit's flip (the plain
    vectorised keys, grouped bits blocked) and, in every group, each set member's swap with one
    unset member drawn uniformly; a swap's key is u / P of its energy change like a flip's, so
    the smallest key among all candidates is again a uniform choice among the accepted ones.

    Each group's members are kept arranged set-first in ``slots`` (``where``: a member's slot),
    built once a call and updated in O(1) a swap, so a random unset partner costs one hash."""
    @njit(cache=True, nogil=True, fastmath=True)
    def run(couplings: _Coefficients, indptr: _Index, indices: _Index, data: _Coefficients,
            groups: _Groups, x: _Bits, f: _Coefficients, schedule: _Floats, offset_rate: float,
            gibbs: bool, fixed: _Bits, s: np.uint64, e: float, best_e: float, best_x: _Bits,
            offset: float) -> _Step:
        group_of, gptr, members, counts = groups
        n = x.shape[0]
        keys = np.empty(n, dtype=np.int32)
        blocked = fixed.copy()
        slots = np.empty(members.shape[0], dtype=np.int64)
        where = np.empty(n, dtype=np.int64)
        for g in range(counts.shape[0]):
            p = gptr[g]
            for want in (1, 0):
                for q in range(gptr[g], gptr[g + 1]):
                    v = members[q]
                    if x[v] == want:
                        slots[p] = v
                        where[v] = p
                        p += 1
            for q in range(gptr[g], gptr[g + 1]):
                blocked[members[q]] = 1
        pending = False
        for t in range(schedule.shape[0]):
            seed, s = _iteration_seed(s)
            beta = schedule[t]
            smallest = _trial_keys(seed, f, x, blocked, beta, offset, gibbs, keys)
            partner_seed = _U32(seed ^ _PARTNER_SALT)
            swap_key = _NEVER
            swap_a = -1
            swap_b = -1
            swap_d = 0.0
            b32 = _F32(beta)
            o32 = _F32(offset)
            for g in range(counts.shape[0]):
                lo = gptr[g]
                ones = counts[g]
                zeros = gptr[g + 1] - lo - ones
                if ones == 0 or zeros == 0:
                    continue
                for p in range(lo, lo + ones):
                    a = slots[p]
                    h = _hash32(_U32(partner_seed + _U32(_U32(p + 1) * _GOLDEN32)))
                    b = slots[lo + ones + np.int64(h % _U32(zeros))]
                    jab = _coupling(dense_storage, couplings, indptr, indices, data, a, b)
                    d = np.float64(f[b]) - np.float64(f[a]) - jab
                    cost = b32 * (_F32(d) - o32)
                    key = _bits_from_float32(_trial_uniform(seed, n + p)
                                             * _inverse_acceptance(cost, gibbs))
                    if key < swap_key:
                        swap_key = key
                        swap_a = a
                        swap_b = b
                        swap_d = d
            if min(smallest, swap_key) >= _ONE_BITS:
                offset += offset_rate
                continue
            offset = 0.0
            if swap_key < smallest:
                e, best_e, pending = _make_trial_move(dense_storage, couplings, indptr, indices,
                                                      data, x, f, swap_a, swap_b, swap_d, e,
                                                      best_e, best_x, pending)
                pa = where[swap_a]
                pb = where[swap_b]
                slots[pa] = swap_b
                slots[pb] = swap_a
                where[swap_a] = pb
                where[swap_b] = pa
            else:
                i = _first_index(keys, smallest)
                e, best_e, pending = _make_trial_move(dense_storage, couplings, indptr, indices,
                                                      data, x, f, i, -1,
                                                      f[i] if x[i] == 0 else -f[i], e, best_e,
                                                      best_x, pending)
        if pending:
            best_x[:] = x
        return s, e, best_e, offset

    return run


_trials_dense_grouped = _trial_run_grouped(True)
_trials_sparse_grouped = _trial_run_grouped(False)


@njit(cache=True, nogil=True)
def _anneal_replica(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                    data: _Coefficients, x: _Bits, f: _Coefficients, schedule: _Floats, trial: bool,
                    offset_rate: float, table: _Table, fixed: _Bits, s: np.uint64, e: float,
                    best_e: float, best_x: _Bits, offset: float) -> _Step:
    """Steps at the inverse temperatures of ``schedule``: a sweep each, or a parallel trial each."""
    if trial and dense:
        return _trials_dense(couplings, indptr, indices, data, x, f, schedule, offset_rate,
                             table[0] < 0.0, fixed, s, e, best_e, best_x, offset)
    if trial:
        return _trials_sparse(couplings, indptr, indices, data, x, f, schedule, offset_rate,
                              table[0] < 0.0, fixed, s, e, best_e, best_x, offset)
    for t in range(schedule.shape[0]):
        s, e, best_e = _sweep_replica(dense, couplings, indptr, indices, data, x, f,
                                      schedule[t], table, fixed, s, e, best_e, best_x)
    return s, e, best_e, offset


@njit(cache=True, nogil=True)
def _anneal_replica_constrained(dense: bool, couplings: _Coefficients, indptr: _Index,
                                indices: _Index, data: _Coefficients, cons: _Constraints,
                                lhs: _Floats, x: _Bits, f: _Coefficients, schedule: _Floats,
                                trial: bool, offset_rate: float, table: _Table, fixed: _Bits,
                                s: np.uint64, e: float, best_e: float, best_x: _Bits,
                                offset: float) -> _Step:
    """``_anneal_replica`` with inequality constraints (``lhs``: this replica's row)."""
    if trial and dense:
        return _trials_dense_constrained(couplings, indptr, indices, data, cons, lhs, x, f,
                                         schedule, offset_rate, table[0] < 0.0, fixed, s, e,
                                         best_e, best_x, offset)
    if trial:
        return _trials_sparse_constrained(couplings, indptr, indices, data, cons, lhs, x, f,
                                          schedule, offset_rate, table[0] < 0.0, fixed, s, e,
                                          best_e, best_x, offset)
    for t in range(schedule.shape[0]):
        s, e, best_e = _sweep_replica_constrained(dense, couplings, indptr, indices, data, cons,
                                                  lhs, x, f, schedule[t], table, fixed, s, e,
                                                  best_e, best_x)
    return s, e, best_e, offset


@njit(cache=True, nogil=True)
def _anneal_replica_grouped(dense: bool, couplings: _Coefficients, indptr: _Index,
                            indices: _Index, data: _Coefficients, groups: _Groups, x: _Bits,
                            f: _Coefficients, schedule: _Floats, trial: bool, offset_rate: float,
                            table: _Table, fixed: _Bits, s: np.uint64, e: float, best_e: float,
                            best_x: _Bits, offset: float) -> _Step:
    """``_anneal_replica`` with k-hot groups (swap moves inside each group)."""
    if trial and dense:
        return _trials_dense_grouped(couplings, indptr, indices, data, groups, x, f, schedule,
                                     offset_rate, table[0] < 0.0, fixed, s, e, best_e, best_x,
                                     offset)
    if trial:
        return _trials_sparse_grouped(couplings, indptr, indices, data, groups, x, f, schedule,
                                      offset_rate, table[0] < 0.0, fixed, s, e, best_e, best_x,
                                      offset)
    for t in range(schedule.shape[0]):
        s, e, best_e = _sweep_replica_grouped(dense, couplings, indptr, indices, data, groups, x,
                                              f, schedule[t], table, fixed, s, e, best_e, best_x)
    return s, e, best_e, offset


# ---------------------------------------------------------------------------- annealing
def _compile(impl: _F, name: str, serial_nogil: bool = True) -> tuple[Dispatcher[_F], Dispatcher[_F]]:
    """Compile ``impl`` twice: threaded over replicas (``prange``) and on the calling thread only.

    The serial twin serves pools of worker threads (each job on one core); numba's default
    threading layer must not be entered from several threads at once. The copy gets its own
    qualified name so the two on-disk caches do not collide. ``serial_nogil=False`` keeps the
    GIL through a short serial call: taking the GIL back after a call waits for the event loop's
    switch interval (0.5 ms), far longer than the ~10-50 us such a call runs (small sync jobs at
    32 connections: 1.02x the jobs/s with p99 0.99x of releasing it, A/B in docs/service.md).
    """
    parallel = njit(cache=True, nogil=True, parallel=True)(impl)
    twin = types.FunctionType(impl.__code__, impl.__globals__, name + "_serial", impl.__defaults__,
                              impl.__closure__)
    twin.__qualname__ = name + "_serial"
    # The twin runs impl's own code, so it has impl's signature.
    return parallel, njit(cache=True, nogil=serial_nogil)(cast(_F, twin))


# Arguments shared by the public kernels:
#   dense, couplings, indptr, indices, data: the problem (the unused form may be a dummy);
#   cons: the inequality constraints (see ``_penalty_change``; none: an empty weight array),
#   group_of, group_ptr, group_members, group_counts: k-hot groups (see
#   ``_sweep_replica_grouped``; none: an empty group_of; never together with constraints), as
#   four arrays rather than a tuple: numba types a tuple argument in Python at every call and
#   arrays in C (as a second tuple the groups cost the trainer's 1,000-bit solves ~70 us each,
#   a tenth of a whole 10-step solve; as arrays, nothing measurable),
#   lhs (R, C) float64: each replica's left-hand sides, kept in step with its state;
#   states (R, n) uint8, fields (R, n), rng (R,) uint64, energies / best_energies (R,) float64,
#   best_states (R, n) uint8, offsets (R,) float64 (dynamic offsets of the parallel trial);
#   energies include the inequality penalty;
#   trial: True for parallel-trial steps, False for sweeps; table: METROPOLIS_TABLE or
#   GIBBS_TABLE (the acceptance rule);
#   fixed (n,) uint8: bits never flipped.
def _anneal_impl(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                 data: _Coefficients, cons: _Constraints, group_of: _Int64s, group_ptr: _Int64s,
                 group_members: _Int64s, group_counts: _Int64s, states: _Bits,
                 fields: _Coefficients, lhs: _Floats, schedule: _Floats, trial: bool,
                 offset_rate: float, table: _Table, fixed: _Bits, rng: _Rng, energies: _Floats,
                 best_energies: _Floats, best_states: _Bits, offsets: _Floats) -> None:
    if group_of.shape[0] > 0:
        groups = (group_of, group_ptr, group_members, group_counts)
        for r in prange(states.shape[0]):
            rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_grouped(
                dense, couplings, indptr, indices, data, groups, states[r], fields[r], schedule,
                trial, offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                best_states[r], offsets[r])
        return
    if cons[3].shape[0] > 0:
        for r in prange(states.shape[0]):
            rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_constrained(
                dense, couplings, indptr, indices, data, cons, lhs[r], states[r], fields[r],
                schedule, trial, offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                best_states[r], offsets[r])
        return
    for r in prange(states.shape[0]):
        rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica(
            dense, couplings, indptr, indices, data, states[r], fields[r], schedule, trial,
            offset_rate, table, fixed, rng[r], energies[r], best_energies[r], best_states[r],
            offsets[r])


#: Every replica takes one step at each inverse temperature of ``schedule`` (T,).
anneal, anneal_serial = _compile(_anneal_impl, "anneal")


# ---------------------------------------------------------------------------- exact energies
def _exact_impl(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                data: _Coefficients, linear: _Floats, constant: float, states: _Bits,
                fields: _Coefficients, energies: _Floats) -> None:
    """From scratch, accumulated in float64: fields[r] = h + J x_r and energies[r] = E(x_r).

    Adds the coupling row of every set bit (J is symmetric), so the cost is n x (ones in x) and
    the dense case vectorises; no BLAS, whose threads would fight numba's for the cores.
    """
    n = linear.shape[0]
    for r in prange(states.shape[0]):
        acc = linear.copy()
        x = states[r]
        for j in range(n):
            if x[j]:
                if dense:
                    row = couplings[j]
                    for i in range(n):
                        acc[i] += row[i]
                else:
                    for k in range(indptr[j], indptr[j + 1]):
                        acc[indices[k]] += data[k]
        total = 0.0
        for i in range(n):
            fields[r, i] = acc[i]
            if x[i]:
                total += linear[i] + acc[i]
        energies[r] = constant + 0.5 * total


exact_fields, exact_fields_serial = _compile(_exact_impl, "exact_fields", serial_nogil=False)


# ---------------------------------------------------------------------------- energy scales
@njit(cache=True, nogil=True)
def quantile(a: _Floats, q: float) -> float:
    """np.quantile(a, q) (its default "linear" method) of a non-empty array by partial sorts:
    numpy's general quantile machinery costs more than the selection on a few thousand deltas."""
    position = q * (a.size - 1)
    lo = int(np.floor(position))
    part = np.partition(a, lo)
    low = part[lo]
    high = part[lo + 1:].min() if lo + 1 < a.size else low
    value: float = low + (position - lo) * (high - low)
    return value


def _delta_scales_impl(dense: bool, couplings: _Coefficients, exact_couplings: _Floats,
                       indptr: _Index, indices: _Index, data: _Coefficients, linear: _Floats,
                       states: _Bits, fields: _Coefficients, energies: _Floats, fixed: _Bits,
                       rng: _Rng, table: _Table, probes: int,
                       max_sweeps: int) -> tuple[float, float]:
    """(large, small): the median |dE| over the free bits of ``states``, and the 5th percentile
    of the positive dE (above 1e-9 large) at the local minima that greedy sweeps reach from
    copies of the first ``probes`` replicas, dE recomputed exactly. (1, 1) when every |dE| is 0.
    One call instead of ~10 numpy calls under the GIL (0.2-0.3 ms of a small solve).

    The quench: sweeps that take only moves lowering the energy, until one changes nothing, at
    most ``max_sweeps`` per replica. Finite stand-ins for beta = inf and best = -inf: the sweep
    kernel is compiled with fastmath, which assumes no infinities.
    """
    n_rep, n = states.shape
    values = np.empty(n_rep * n)
    m = 0
    for r in range(n_rep):
        for i in range(n):
            v = abs(np.float64(fields[r, i]))
            if fixed[i] == 0 and v > 0.0:
                values[m] = v
                m += 1
    if m == 0:
        return 1.0, 1.0
    large = quantile(values[:m], 0.5)
    p = min(probes, n_rep)
    # The scales are the problem's own: the quench ignores inequality constraints.
    x = states[:p].copy()
    f = fields[:p].copy()
    e = energies[:p].copy()
    s = rng[:p].copy()
    for r in prange(p):
        for _ in range(max_sweeps):
            before = e[r]
            s[r], e[r], _ = _sweep_replica(dense, couplings, indptr, indices, data, x[r], f[r],
                                           1e30, table, fixed, s[r], e[r], -1e308, x[r])
            if not e[r] < before:
                break
    exact = np.empty((p, n))
    exact_fields_serial(dense, exact_couplings, indptr, indices, data, linear, 0.0, x, exact, e)
    m = 0
    for r in range(p):
        for i in range(n):
            d = exact[r, i] if x[r, i] == 0 else -exact[r, i]
            if fixed[i] == 0 and d > 1e-9 * large:
                values[m] = d
                m += 1
    small = quantile(values[:m], 0.05) if m > 0 else large
    return large, min(small, large)


#: The energy scales of a problem at its replicas' states (the replicas are left untouched).
delta_scales, delta_scales_serial = _compile(_delta_scales_impl, "delta_scales", serial_nogil=False)


# ---------------------------------------------------------------------------- parallel tempering
@njit(cache=True, nogil=True)
def swap_replicas(ladder: _Floats, order: _Index, energies: _Floats, s: np.uint64, parity: int,
                  accepted: _Index) -> np.uint64:
    """Exchanges between neighbouring temperature slots k, k+1 with k % 2 == parity.

    ``order[k]`` is the replica at slot k (``ladder`` ascending: hot -> cold). A pair swaps with
    probability min(1, exp((b_k - b_k+1)(E_k - E_k+1))); ``accepted[k]`` counts swaps of (k, k+1).
    Returns the new generator state.
    """
    for k in range(parity, order.shape[0] - 1, 2):
        a = order[k]
        b = order[k + 1]
        x = (ladder[k] - ladder[k + 1]) * (energies[a] - energies[b])
        ok = True
        if x < 0.0:
            u, s = _next_uniform(s)
            ok = u < np.exp(x)
        if ok:
            order[k] = b
            order[k + 1] = a
            accepted[k] += 1
    return s


@njit(cache=True, nogil=True)
def cluster_moves(indptr: _Index, indices: _Index, data: _Coefficients, states: _Bits,
                  fields: _Coefficients, energies: _Floats, best_energies: _Floats,
                  best_states: _Bits, orders: _Index, first_slot: int, fixed: _Bits, s: np.uint64,
                  stack: _Index, mark: _Bits) -> np.uint64:
    """Isoenergetic cluster moves (Houdayer 2001; Zhu, Ochoa & Katzgraber 2015) between the
    ensemble pairs (0, 1), (2, 3), ... at every slot from ``first_slot`` on (the cold end).

    The replicas at slot k of two ensembles share a temperature. A site where they differ is
    drawn; the connected cluster of differing sites (through the couplings) around it flips in
    both. The pair's summed energy is unchanged (a coupling across the cluster's edge meets
    equal bits on the far side in both replicas, so its two changes cancel; a field's too), so
    the move is always accepted, and it carries a whole domain from one replica to the other
    where single flips would have to climb over the domain wall. Sparse storage only;
    ``stack`` (n,) int and ``mark`` (n,) uint8 zeros are scratch; returns the generator state.
    """
    size = orders.shape[1]
    n = states.shape[1]
    for e in range(0, orders.shape[0] - 1, 2):
        for k in range(first_slot, size):
            a = e * size + orders[e, k]
            b = (e + 1) * size + orders[e + 1, k]
            xa = states[a]
            xb = states[b]
            # the first differing free site at or after a random start (wrapping)
            u, s = _next_uniform(s)
            start = min(int(u * n), n - 1)
            seed_site = -1
            for t in range(n):
                i = start + t
                if i >= n:
                    i -= n
                if xa[i] != xb[i] and fixed[i] == 0:
                    seed_site = i
                    break
            if seed_site < 0:
                continue
            mark[seed_site] = 1
            stack[0] = seed_site
            top = 1
            while top > 0:
                top -= 1
                v = stack[top]
                energies[a] += _flip_sparse(indptr, indices, data, xa, fields[a], v)
                energies[b] += _flip_sparse(indptr, indices, data, xb, fields[b], v)
                # flipping v in both leaves every other site's "differs" as it was
                for q in range(indptr[v], indptr[v + 1]):
                    w = indices[q]
                    if mark[w] == 0 and xa[w] != xb[w] and fixed[w] == 0:
                        mark[w] = 1
                        stack[top] = w
                        top += 1
            mark[:] = 0
            for r in (a, b):
                if energies[r] < best_energies[r]:
                    best_energies[r] = energies[r]
                    best_states[r, :] = states[r]
    return s


@njit(cache=True, nogil=True)
def _temper_ensemble(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                     data: _Coefficients, states: _Bits, fields: _Coefficients, ladder: _Floats,
                     order: _Index, base: int, rounds: int, steps: int, trial: bool,
                     offset_rate: float, table: _Table, fixed: _Bits, rng: _Rng,
                     swap_state: np.uint64, energies: _Floats, best_energies: _Floats,
                     best_states: _Bits, offsets: _Floats, accepted: _Index,
                     first_parity: int) -> np.uint64:
    """One ensemble (replicas base .. base + R - 1) for ``rounds`` rounds on the calling thread."""
    n_rep = ladder.shape[0]
    schedule = np.empty(steps)
    for t in range(rounds):
        for k in range(n_rep):
            r = base + order[k]
            schedule[:] = ladder[k]
            rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica(
                dense, couplings, indptr, indices, data, states[r], fields[r], schedule, trial,
                offset_rate, table, fixed, rng[r], energies[r], best_energies[r], best_states[r],
                offsets[r])
        swap_state = swap_replicas(ladder, order, energies[base:base + n_rep], swap_state,
                                   (t + first_parity) % 2, accepted)
    return swap_state


@njit(cache=True, nogil=True)
def _temper_ensemble_constrained(dense: bool, couplings: _Coefficients, indptr: _Index,
                                 indices: _Index, data: _Coefficients, cons: _Constraints,
                                 states: _Bits, fields: _Coefficients, lhs: _Floats,
                                 ladder: _Floats, order: _Index, base: int, rounds: int, steps: int,
                                 trial: bool, offset_rate: float, table: _Table, fixed: _Bits,
                                 rng: _Rng, swap_state: np.uint64, energies: _Floats,
                                 best_energies: _Floats, best_states: _Bits, offsets: _Floats,
                                 accepted: _Index, first_parity: int) -> np.uint64:
    """``_temper_ensemble`` with inequality constraints (apart: see ``_sweep_replica``)."""
    n_rep = ladder.shape[0]
    schedule = np.empty(steps)
    for t in range(rounds):
        for k in range(n_rep):
            r = base + order[k]
            schedule[:] = ladder[k]
            rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_constrained(
                dense, couplings, indptr, indices, data, cons, lhs[r], states[r], fields[r],
                schedule, trial, offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                best_states[r], offsets[r])
        swap_state = swap_replicas(ladder, order, energies[base:base + n_rep], swap_state,
                                   (t + first_parity) % 2, accepted)
    return swap_state


@njit(cache=True, nogil=True)
def _temper_ensemble_grouped(dense: bool, couplings: _Coefficients, indptr: _Index,
                             indices: _Index, data: _Coefficients, groups: _Groups, states: _Bits,
                             fields: _Coefficients, ladder: _Floats, order: _Index, base: int,
                             rounds: int, steps: int, trial: bool, offset_rate: float,
                             table: _Table, fixed: _Bits, rng: _Rng, swap_state: np.uint64,
                             energies: _Floats, best_energies: _Floats, best_states: _Bits,
                             offsets: _Floats, accepted: _Index, first_parity: int) -> np.uint64:
    """``_temper_ensemble`` with k-hot groups (apart: see ``_sweep_replica``)."""
    n_rep = ladder.shape[0]
    schedule = np.empty(steps)
    for t in range(rounds):
        for k in range(n_rep):
            r = base + order[k]
            schedule[:] = ladder[k]
            rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_grouped(
                dense, couplings, indptr, indices, data, groups, states[r], fields[r], schedule,
                trial, offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                best_states[r], offsets[r])
        swap_state = swap_replicas(ladder, order, energies[base:base + n_rep], swap_state,
                                   (t + first_parity) % 2, accepted)
    return swap_state


# Tempering arguments: E independent ensembles of R replicas each, replica e * R + i being the
# i-th of ensemble e. ``ladders`` (E, R) ascending betas; ``orders`` (E, R): the ensemble's replica
# (0..R-1) at each slot, updated in place; ``swap_rng`` (E,) uint64; ``accepted`` (E, R - 1) swap
# counts per slot pair; ``first_parity`` alternates even and odd pairs across calls. Each round:
# ``steps`` moves per replica at its slot's temperature, then one exchange round.
def _temper_impl(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                 data: _Coefficients, cons: _Constraints, group_of: _Int64s, group_ptr: _Int64s,
                 group_members: _Int64s, group_counts: _Int64s, states: _Bits,
                 fields: _Coefficients, lhs: _Floats, ladders: _Floats, orders: _Index,
                 rounds: int, steps: int, trial: bool, offset_rate: float, table: _Table,
                 fixed: _Bits, rng: _Rng, swap_rng: _Rng, energies: _Floats,
                 best_energies: _Floats, best_states: _Bits, offsets: _Floats, accepted: _Index,
                 first_parity: int) -> None:
    n_rep = ladders.shape[1]
    if group_of.shape[0] > 0:
        groups = (group_of, group_ptr, group_members, group_counts)
        for e in prange(ladders.shape[0]):
            swap_rng[e] = _temper_ensemble_grouped(
                dense, couplings, indptr, indices, data, groups, states, fields, ladders[e],
                orders[e], e * n_rep, rounds, steps, trial, offset_rate, table, fixed, rng,
                swap_rng[e], energies, best_energies, best_states, offsets, accepted[e],
                first_parity)
        return
    if cons[3].shape[0] > 0:
        for e in prange(ladders.shape[0]):
            swap_rng[e] = _temper_ensemble_constrained(
                dense, couplings, indptr, indices, data, cons, states, fields, lhs, ladders[e],
                orders[e], e * n_rep, rounds, steps, trial, offset_rate, table, fixed, rng,
                swap_rng[e], energies, best_energies, best_states, offsets, accepted[e],
                first_parity)
        return
    for e in prange(ladders.shape[0]):
        swap_rng[e] = _temper_ensemble(dense, couplings, indptr, indices, data, states, fields,
                                       ladders[e], orders[e], e * n_rep, rounds, steps, trial,
                                       offset_rate, table, fixed, rng, swap_rng[e], energies,
                                       best_energies, best_states, offsets, accepted[e],
                                       first_parity)


#: Ensembles in parallel (one thread each, no barrier between rounds: robust on busy machines).
temper, temper_serial = _compile(_temper_impl, "temper")


@njit(cache=True, nogil=True, parallel=True)
def temper_replicas(dense: bool, couplings: _Coefficients, indptr: _Index, indices: _Index,
                    data: _Coefficients, cons: _Constraints, group_of: _Int64s,
                    group_ptr: _Int64s, group_members: _Int64s, group_counts: _Int64s,
                    states: _Bits, fields: _Coefficients, lhs: _Floats, ladders: _Floats,
                    orders: _Index, rounds: int, steps: int,
                    trial: bool, offset_rate: float, table: _Table, fixed: _Bits, rng: _Rng,
                    swap_rng: _Rng, energies: _Floats, best_energies: _Floats, best_states: _Bits,
                    offsets: _Floats, accepted: _Index, first_parity: int) -> None:
    """One ensemble (E = 1) with its replicas in parallel: a barrier every round."""
    ladder = ladders[0]
    order = orders[0]
    n_rep = ladder.shape[0]
    constrained = cons[3].shape[0] > 0
    grouped = group_of.shape[0] > 0
    groups = (group_of, group_ptr, group_members, group_counts)
    slot = np.empty(n_rep, dtype=np.int64)
    for t in range(rounds):
        for k in range(n_rep):
            slot[order[k]] = k
        for r in prange(n_rep):
            sched = np.full(steps, ladder[slot[r]])
            if grouped:
                rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_grouped(
                    dense, couplings, indptr, indices, data, groups, states[r], fields[r], sched,
                    trial, offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                    best_states[r], offsets[r])
            elif constrained:
                rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica_constrained(
                    dense, couplings, indptr, indices, data, cons, lhs[r], states[r], fields[r],
                    sched, trial, offset_rate, table, fixed, rng[r], energies[r],
                    best_energies[r], best_states[r], offsets[r])
            else:
                rng[r], energies[r], best_energies[r], offsets[r] = _anneal_replica(
                    dense, couplings, indptr, indices, data, states[r], fields[r], sched, trial,
                    offset_rate, table, fixed, rng[r], energies[r], best_energies[r],
                    best_states[r], offsets[r])
        swap_rng[0] = swap_replicas(ladder, order, energies, swap_rng[0], (t + first_parity) % 2,
                                    accepted[0])


@njit(cache=True, nogil=True)
def gather(values: _Coefficients, source: _Index, out: _Coefficients) -> None:
    """out[k] = values[source[k]], converted to out's dtype in the same pass: a coupling pattern's
    float32 values into float64 CSR order on the service (np.take over an int64 index, then a
    copy, took ~3x as long for the trainer's 176,800 slots), and the trainer's CSR data into
    float32 wire values."""
    for k in range(source.size):
        out[k] = values[source[k]]

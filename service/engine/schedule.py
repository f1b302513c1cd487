"""Temperatures: the Digital Annealer's schedules, automatic beta ranges and tempering ladders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np



class CoolingMode(str, Enum):
    """How the DA lowers T every ``temperature_interval`` iterations."""

    EXPONENTIAL = "EXPONENTIAL"  # T *= 1 - decay
    INVERSE = "INVERSE"  # T *= 1 - decay * T
    INVERSE_ROOT = "INVERSE_ROOT"  # T *= 1 - decay * T**2


# Temperatures are kept strictly positive; below this the dynamics are greedy anyway.
_T_FLOOR = 1e-12


@dataclass
class TemperatureSchedule:
    """The DA schedule as a stream: T starts at ``start`` and drops every ``interval`` steps.

    ``betas(count)`` returns the inverse temperatures of the next ``count`` steps and advances, so
    a run can be cut into chunks without materialising billions of iterations.
    """

    start: float
    decay: float
    interval: int = 100
    mode: CoolingMode = CoolingMode.EXPONENTIAL

    def __post_init__(self) -> None:
        if not (self.start > 0 and math.isfinite(self.start)):
            raise ValueError(f"temperature_start must be positive and finite, got {self.start}")
        if not (0 <= self.decay < 1):
            raise ValueError(f"temperature_decay must be in [0, 1), got {self.decay}")
        if self.interval < 1:
            raise ValueError(f"temperature_interval must be >= 1, got {self.interval}")
        self.mode = CoolingMode(self.mode)
        self._t = float(self.start)
        self._step = 0

    def _lower(self) -> None:
        t = self._t
        if self.mode is CoolingMode.EXPONENTIAL:
            t *= 1.0 - self.decay
        elif self.mode is CoolingMode.INVERSE:
            t *= 1.0 - self.decay * t
        else:
            t *= 1.0 - self.decay * t * t
        self._t = max(t, _T_FLOOR)

    def betas(self, count: int) -> np.ndarray:
        out = np.empty(count)
        done = 0
        while done < count:
            left_in_interval = self.interval - self._step % self.interval
            take = min(left_in_interval, count - done)
            out[done:done + take] = 1.0 / self._t
            done += take
            self._step += take
            if self._step % self.interval == 0:
                self._lower()
        return out

    @classmethod
    def spanning(cls, beta_hot: float, beta_cold: float, num_steps: int, interval: int,
                 mode: CoolingMode = CoolingMode.EXPONENTIAL) -> TemperatureSchedule:
        """An exponential schedule from T = 1 / beta_hot to T = 1 / beta_cold over ``num_steps``."""
        drops = max(num_steps // max(interval, 1) - 1, 1)
        decay = 1.0 - (beta_hot / beta_cold) ** (1.0 / drops) if beta_cold > beta_hot else 0.0
        return cls(start=1.0 / beta_hot, decay=min(max(decay, 0.0), 0.999999), interval=interval,
                   mode=mode)


def beta_range_from_deltas(large: float, small: float) -> tuple[float, float]:
    """(beta_hot, beta_cold): accept the typical uphill move ``large`` with p = e^-2 when hot and
    the smallest relevant one ``small`` with p = 1/1000 when cold.

    Measured on G1, G11 and G14: a hotter end (p = 1/2) spends replicas on random states and
    G14 stalls 1-2 cut units lower; a warmer cold end (p = 1/100) misses G11's optimum.
    """
    large = max(large, 1e-300)
    small = min(max(small, 1e-300), large)
    beta_hot = 2.0 / large
    beta_cold = math.log(1000.0) / small
    return beta_hot, max(beta_cold, 1.01 * beta_hot)


def geometric_ladder(beta_hot: float, beta_cold: float, num_replicas: int) -> np.ndarray:
    """Inverse temperatures, ascending (hot -> cold), evenly spaced in log beta."""
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if num_replicas == 1:
        return np.array([beta_cold])
    return np.geomspace(beta_hot, beta_cold, num_replicas)


def equalize_ladder(ladder: np.ndarray, acceptance: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Move the inner betas so every neighbour pair swaps about equally often.

    Each gap k gets a length -log(acceptance_k): hard gaps are long. Walking the ladder at equal
    steps of that cumulative length (interpolating log beta) spreads the difficulty evenly; the
    end points stay. One call is one feedback iteration.
    """
    if ladder.size < 3:
        return ladder
    gap = -np.log(np.clip(acceptance, floor, 0.999))
    cumulative = np.concatenate([[0.0], np.cumsum(gap)])
    targets = np.linspace(0.0, cumulative[-1], ladder.size)
    new = np.exp(np.interp(targets, cumulative, np.log(ladder)))
    new[0], new[-1] = ladder[0], ladder[-1]
    # Damped update: half-way, so noisy estimates do not make the ladder oscillate.
    damped: np.ndarray = np.sqrt(new * ladder)
    return damped

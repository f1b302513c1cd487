"""Compile (or load from numba's on-disk cache) every kernel of the service: the engine's and
the DA JSON term scanner's. Run once at install or image build (``python -m service.warmup``)."""

from __future__ import annotations

import time

from service.engine.warmup import main as warm_engine
from service.jobs.solvers import warm_up as warm_service


def main() -> None:
    warm_engine()
    start = time.perf_counter()
    warm_service()
    print(f"spinout service kernels ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

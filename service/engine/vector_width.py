"""512-bit SIMD for numba's kernels on AVX-512 processors.

LLVM tunes Intel's server cores (Skylake-X to Emerald Rapids) to prefer 256-bit vectors, as
clang's ``-mprefer-vector-width=256`` would, so numba's vectorised loops leave half of every
AVX-512 register empty. Dropping that preference runs the parallel trial's key loop ~2x faster
and a whole small DA job over HTTP ~1.2x (docs/engine.md). numba takes its target features once,
when its code generator starts (the first ``@njit`` in the process), and keys its on-disk cache
on them, so the engine package's ``__init__`` applies this before any of SpinOut's numba modules loads.
Subprocesses (workers, the warm-up) inherit it through the environment.

``SPINOUT_VECTOR_BITS=256`` opts out; a ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` the user set
is left alone.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping

__all__ = ["prefer_wide_vectors"]

#: LLVM's tuning flag behind the 256-bit preference; a leading '-' removes it.
_NO_256_PREFERENCE = "-prefer-256-bit"


def prefer_wide_vectors(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set NUMBA_CPU_FEATURES to the host's features without the 256-bit preference when the
    host has AVX-512 and nothing says otherwise; returns whether it did."""
    bits = environ.get("SPINOUT_VECTOR_BITS", "512")
    if bits not in ("256", "512"):
        warnings.warn(f"SPINOUT_VECTOR_BITS must be 256 or 512, got {bits!r}; using 512", stacklevel=2)
    if bits == "256" or "NUMBA_CPU_FEATURES" in environ or "NUMBA_CPU_NAME" in environ:
        return False
    if environ.get("NUMBA_ENABLE_AVX", "1") == "0":
        return False
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
    except (ImportError, RuntimeError):  # no llvmlite, or a host LLVM cannot describe
        return False
    if not features.get("avx512f", False):
        return False
    environ["NUMBA_CPU_FEATURES"] = f"{features.flatten()},{_NO_256_PREFERENCE}"
    config = sys.modules.get("numba.core.config")
    if config is not None and environ is os.environ:
        # numba read the environment when it was imported; its code generator reads this.
        setattr(config, "CPU_FEATURES", environ["NUMBA_CPU_FEATURES"])
    return True

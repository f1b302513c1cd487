"""The 512-bit vector preference: when it applies, and that numba's code generator took it."""

from __future__ import annotations

import subprocess
import sys

import llvmlite.binding as llvm
import pytest

from service.engine.vector_width import prefer_wide_vectors
from tests.servers import REPO

HAS_AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))


def test_sets_the_host_features_without_the_256_bit_preference_on_avx512_hosts() -> None:
    environ: dict[str, str] = {}
    applied = prefer_wide_vectors(environ)
    assert applied == HAS_AVX512
    if HAS_AVX512:
        features = environ["NUMBA_CPU_FEATURES"].split(",")
        assert features[-1] == "-prefer-256-bit"
        assert "+avx512f" in features
    else:
        assert environ == {}


@pytest.mark.parametrize("setting", [{"SPINOUT_VECTOR_BITS": "256"}, {"NUMBA_CPU_FEATURES": "+avx2"},
                                     {"NUMBA_CPU_NAME": "generic"}, {"NUMBA_ENABLE_AVX": "0"}])
def test_an_explicit_setting_is_left_alone(setting: dict[str, str]) -> None:
    environ = dict(setting)
    assert prefer_wide_vectors(environ) is False
    assert environ == setting


def test_an_unknown_width_warns_and_keeps_the_default() -> None:
    environ = {"SPINOUT_VECTOR_BITS": "1024"}
    with pytest.warns(UserWarning, match="SPINOUT_VECTOR_BITS must be 256 or 512"):
        applied = prefer_wide_vectors(environ)
    assert applied == HAS_AVX512


@pytest.mark.parametrize("numba_first", [False, True])
def test_numba_compiles_the_kernels_with_the_setting(numba_first: bool) -> None:
    """In a fresh process, even one that imported numba before the package, the code generator
    that compiles the kernels has the features (numba reads them once, at its first @njit)."""
    code = ("import numba\n" if numba_first else "") + (
        "from service.engine import kernels\n"
        "from numba.core.registry import cpu_target\n"
        "print(cpu_target.target_context.codegen()._tm_features.split(',')[-1])\n")
    env_out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}).stdout.strip()
    assert (env_out == "-prefer-256-bit") == HAS_AVX512


def test_only_the_engine_applies_it() -> None:
    """Importing the service package, its CLI, the web layer's settings or the client leaves the
    process environment alone; loading the engine applies the preference."""
    code = ("import os, service, service.cli, service.web.settings, client\n"
            "print('NUMBA_CPU_FEATURES' in os.environ)\n"
            "import service.engine\n"
            "print('NUMBA_CPU_FEATURES' in os.environ)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}).stdout.split()
    assert out == ["False", str(HAS_AVX512)]

"""SpinOut's solver service and annealing engine."""

from .vector_width import prefer_wide_vectors

# Before any numba module of the package loads: numba fixes its target features once.
prefer_wide_vectors()

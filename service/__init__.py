"""SpinOut's solver service (``web``, ``jobs``) and annealing engine (``engine``).

Importing the package does nothing else: the engine applies its numba settings when it loads.
"""

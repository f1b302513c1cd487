"""SpinOut's trainer: MNIST/Fashion-MNIST networks trained with Ising-Dropout or another variant.

``data`` loads the IDX files, ``models`` builds the gated networks (an MLP and a LeNet-5-like
CNN), ``dropout/`` holds one module per variant behind a registry, ``harness`` runs the shared
training loop and metrics, ``pruning`` builds the physically pruned network and its figures, and
``train_command`` is ``spinout train``. See ``docs/ising-dropout.md`` for the Ising-Dropout
formulation and ``docs/networks-and-pruning.md`` for the networks and the pruning figures.
"""

"""SpinOut's trainer: MNIST/Fashion-MNIST MLPs trained with Ising-Dropout or another variant.

``data`` loads the IDX files, ``models`` builds the MLP, ``dropout/`` holds one module per variant
behind a registry, ``harness`` runs the shared training loop and metrics, and ``train_command``
is ``spinout train``. See ``docs/ising-dropout.md`` for the Ising-Dropout formulation.
"""

"""The reproduction grid: dataset x network x row, with the Ising-Dropout paper's published numbers.

A *row* is one training configuration (a ``spinout train`` command line without dataset,
network and output), a *run* is a row on one dataset and network. Run ids are built from the
three names only, so they are stable across invocations: the reproduction is resumable by
skipping the runs whose ``result.json`` exists.

The paper's numbers (Salehinejad & Valaee, ICASSP 2019, Tables 1 and 2 and its text) are kept in
:data:`PAPER`, keyed by ``(dataset, network, row key)``. Where the paper prints only an accuracy,
the other fields are ``None``; outside the fully printed MNIST 784-100-100-10 table the dropout
rows' drop rates follow from ``p = 0.5`` and their "Total" from eq. 6, flagged ``derived``.

Example:
    >>> runs = build_grid(datasets=["mnist"], networks=["784-100-100-10"], rows=["none", "ising-infer-input"])
    >>> [r.run_id for r in runs]
    ['mnist__784-100-100-10__none', 'mnist__784-100-100-10__ising-infer-input']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .dropout.base import paper_parameter_counts

DATASETS = ("mnist", "fashion-mnist")
#: The paper's three networks, then an extra one for DropNeuron/SparseVD (LeNet-300-100).
PAPER_NETWORKS = ("784-100-100-10", "784-100-50-50-10", "784-100-50-50-25-10")
EXTRA_NETWORK = "784-300-100-10"
NETWORKS = PAPER_NETWORKS + (EXTRA_NETWORK,)
DEFAULT_EPOCHS = 32
#: The literal energy solves every mini-batch with a full anneal and collapses within an epoch:
#: a few epochs show it at a tenth of the cost of 32.
PAPER_ENERGY_EPOCHS = 3


@dataclass(frozen=True)
class Row:
    """One training configuration of the grid.

    Attributes:
        key: stable short name, part of the run id.
        label: the table's row label.
        dropout: the ``--dropout`` variant.
        include_input, mode, p: as in ``spinout train``.
        options: ``--option KEY=VALUE`` pairs (or dedicated flags such as ``ising_energy``).
        paper_row: whether the row is one of the paper's (Tables 1 and 2).
        networks: the networks the row runs on (default: the paper's three).
        datasets: the datasets it runs on (default: both).
        epochs: the row's own epoch count when the grid's is not given (a method published with
            a longer schedule); None: :data:`DEFAULT_EPOCHS`.
        max_epochs: a cap on the grid's epoch count for this row.
        args: extra ``spinout train`` arguments.
    """

    key: str
    label: str
    dropout: str
    include_input: bool = False
    mode: str = "train"
    p: float | None = None
    options: tuple[tuple[str, str], ...] = ()
    paper_row: bool = False
    networks: tuple[str, ...] = PAPER_NETWORKS
    datasets: tuple[str, ...] = DATASETS
    epochs: int | None = None
    max_epochs: int | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperResult:
    """A published result; percentages in 0..100, ``None`` where the paper does not say."""

    accuracy: float | None
    drop_rates: tuple[float, ...] | None = None
    removed_pct: float | None = None
    note: str = ""
    derived: bool = False


@dataclass(frozen=True)
class Run:
    """One row on one dataset and network."""

    dataset: str
    network: str
    row: Row
    epochs: int
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int | None = None
    seed: int = 0
    paper: PaperResult | None = None
    patience: int | None = None

    @property
    def run_id(self) -> str:
        return run_id(self.dataset, self.network, self.row.key)

    @property
    def sizes(self) -> list[int]:
        return [int(s) for s in self.network.split("-")]

    @property
    def relative_cost(self) -> float:
        """A rough guess of the run's training time (epochs x weights, more for the methods
        with a solve or an estimator per step, less for bigger batches), for longest-first
        scheduling: a long run started last would leave the other cores idle at the end."""
        weights = sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        method = {"ising": 3.0, "mi": 1.5, "dropconnect": 1.5, "sparsevd": 2.0}.get(self.row.dropout, 1.0)
        batch = float(self.row.args[self.row.args.index("--batch-size") + 1]) \
            if "--batch-size" in self.row.args else 32.0
        return self.epochs * (weights + 20_000) * method * 32.0 / batch

    def train_args(self, data_dir: str | None = None) -> list[str]:
        """The ``spinout train`` arguments of this run (without ``--out``)."""
        row = self.row
        args = ["--dataset", self.dataset, "--arch", ",".join(self.network.split("-")),
                "--dropout", row.dropout, "--mode", row.mode, "--epochs", str(self.epochs),
                "--seed", str(self.seed), "--threads", "1", "--no-progress"]
        if data_dir is not None:
            args += ["--data-dir", data_dir]
        if row.include_input:
            args.append("--include-input")
        if row.p is not None:
            args += ["--p", str(row.p)]
        for key, value in row.options:
            args += ["--option", f"{key}={value}"]
        if self.limit_train is not None:
            args += ["--limit-train", str(self.limit_train)]
        if self.limit_test is not None:
            args += ["--limit-test", str(self.limit_test)]
        if self.val_size is not None:
            args += ["--val-size", str(self.val_size)]
        if self.patience is not None:
            args += ["--patience", str(self.patience)]
        return args + list(row.args)


def run_id(dataset: str, network: str, row_key: str) -> str:
    """``<dataset>__<network>__<row>``: stable, file-system safe."""
    return f"{dataset}__{network}__{row_key}"


_ISING = "ising"
SPARSEVD_EPOCHS = 60
DROPNEURON_EPOCHS = 15
_PAPER_NETS = PAPER_NETWORKS[:1]

#: Every row, the paper's first (in its tables' order), then the literal energy and imposed
#: rates, then the other variants.
ROWS: tuple[Row, ...] = (
    Row("none", "no dropout", "none", paper_row=True, networks=NETWORKS),
    Row("dropout", "dropout p=0.5", "dropout", p=0.5, paper_row=True, networks=NETWORKS),
    Row("dropout-input", "dropout p=0.5 incl. input", "dropout", include_input=True, p=0.5, paper_row=True),
    Row("ising-train", "Ising-Dropout (training)", _ISING, mode="train", paper_row=True),
    Row("ising-train-input", "Ising-Dropout (training) incl. input", _ISING, include_input=True, mode="train",
        paper_row=True),
    Row("ising-infer", "Ising-Dropout (training+inference)", _ISING, mode="train+infer", paper_row=True),
    Row("ising-infer-input", "Ising-Dropout (training+inference) incl. input", _ISING, include_input=True,
        mode="train+infer", paper_row=True),
    Row("ising-paper-train-input", "Ising, literal eq. 5 energy (training) incl. input", _ISING,
        include_input=True, mode="train", options=(("ising_energy", "paper"),), networks=_PAPER_NETS,
        max_epochs=PAPER_ENERGY_EPOCHS),
    Row("ising-paper-infer-input", "Ising, literal eq. 5 energy (training+inference) incl. input", _ISING,
        include_input=True, mode="train+infer", options=(("ising_energy", "paper"),), networks=_PAPER_NETS,
        max_epochs=PAPER_ENERGY_EPOCHS),
    Row("ising-keep-infer-input", "Ising, paper's drop rates imposed (training+inference) incl. input", _ISING,
        include_input=True, mode="train+infer", options=(("keep_ratio", "0.614,0.6782,0.7485"),),
        networks=_PAPER_NETS, datasets=("mnist",)),
    # Structured pruning at the paper's Ising drop rates (the compression baselines of the study):
    # pruned once after the first epoch, fine-tuned for the rest.
    Row("prune-magnitude-input", "magnitude pruning at the paper's Ising rates, incl. input", "prune-magnitude",
        include_input=True, mode="train+infer", options=(("keep_ratio", "0.614,0.6782,0.7485"),)),
    Row("prune-taylor-input", "Taylor pruning at the paper's Ising rates, incl. input", "prune-taylor",
        include_input=True, mode="train+infer", options=(("keep_ratio", "0.614,0.6782,0.7485"),)),
    Row("gaussian", "Gaussian dropout", "gaussian"),
    Row("alpha", "alpha dropout (SELU)", "alpha"),
    Row("dropconnect", "DropConnect", "dropconnect"),
    # ReLU, Adam 1e-3 decayed linearly, 15 epochs. Measured on MNIST 784-300-100-10: 98.11 % at
    # 10.6x; without the decay 97.93 % at 9.2x; sigmoid units with Adam 0.01, 95.6 %.
    Row("dropneuron", "DropNeuron", "dropneuron", networks=NETWORKS, epochs=DROPNEURON_EPOCHS,
        args=("--activation", "relu", "--lr", "0.001", "--lr-decay", "linear")),
    Row("mi", "MI-Dropout", "mi"),
    Row("dropalan-alpha", "DropAlan alpha", "dropalan-alpha"),
    Row("dropalan-beta", "DropAlan beta", "dropalan-beta"),
    Row("dropalan-beta-scaled", "DropAlan scaled beta", "dropalan-beta-scaled"),
    # Published with its own schedule (Adam 1e-3 decayed to 0, batch 100, ReLU, 200 epochs); here
    # 60 epochs with the KL weight warmed up over the first half. Measured on MNIST 784-300-100-10:
    # warm-up over 5 epochs 97.92 % at 29.9x, over 30 98.18 % at 30.3x, over 45 98.16 % at 31.4x.
    Row("sparsevd", "Sparse Variational Dropout", "sparsevd", networks=NETWORKS, epochs=SPARSEVD_EPOCHS,
        options=(("kl_warmup_end", str(SPARSEVD_EPOCHS // 2)),),
        args=("--activation", "relu", "--batch-size", "100", "--lr", "0.001", "--lr-decay", "linear")),
)

ROWS_BY_KEY: dict[str, Row] = {row.key: row for row in ROWS}

#: ``--quick``: one network, a few rows spanning the families, a data subset, two epochs.
QUICK_NETWORKS = ("784-100-100-10",)
QUICK_ROWS = ("none", "dropout", "dropout-input", "ising-train-input", "ising-infer-input", "gaussian",
              "dropconnect", "dropneuron", "mi", "dropalan-beta-scaled", "sparsevd")
QUICK_EPOCHS = 2
QUICK_LIMIT_TRAIN = 2000
QUICK_LIMIT_TEST = 2000
QUICK_VAL_SIZE = 500


def _dropout_result(sizes: Sequence[int], include_input: bool, accuracy: float, p: float = 0.5) -> PaperResult:
    """A dropout row the paper prints only the accuracy of: rates follow from p, "Total" from eq. 6."""
    rates = tuple(([100 * p] if include_input else [0.0]) + [100 * p] * (len(sizes) - 2))
    total, remaining = paper_parameter_counts(sizes, [1 - r / 100 for r in rates])
    return PaperResult(accuracy, rates, round(100 * (1 - remaining / total), 2), derived=True)


def _paper_table() -> dict[tuple[str, str, str], PaperResult]:
    table: dict[tuple[str, str, str], PaperResult] = {}

    def put(dataset: str, network: str, accuracies: dict[str, float | None],
            extra: dict[str, PaperResult] | None = None) -> None:
        sizes = [int(s) for s in network.split("-")]
        for key, acc in accuracies.items():
            if acc is None:
                continue
            if key == "dropout":
                table[(dataset, network, key)] = _dropout_result(sizes, False, acc)
            elif key == "dropout-input":
                table[(dataset, network, key)] = _dropout_result(sizes, True, acc)
            else:
                table[(dataset, network, key)] = PaperResult(acc)
        for key, result in (extra or {}).items():
            table[(dataset, network, key)] = result

    # MNIST, Table 1 (784-100-100-10 in full).
    hidden = (0.0, 38.62, 42.43)
    with_input = (38.60, 32.18, 25.15)
    put("mnist", "784-100-100-10", {}, {
        "none": PaperResult(94.65, (0.0, 0.0, 0.0), 0.0),
        "dropout": PaperResult(91.02, (0.0, 50.0, 50.0), 6.26),
        "dropout-input": PaperResult(85.08, (50.0, 50.0, 50.0), 50.00),
        "ising-train": PaperResult(93.83, hidden, 4.88),
        "ising-train-input": PaperResult(93.47, with_input, 37.71),
        "ising-infer": PaperResult(92.10, hidden, 4.88),
        "ising-infer-input": PaperResult(91.40, with_input, 37.71),
        "ising-keep-infer-input": PaperResult(91.40, with_input, 37.71,
                                              note="the paper's Ising row whose rates are imposed"),
    })
    put("mnist", "784-100-50-50-10", {"none": 95.02, "dropout": 87.59, "dropout-input": 82.05}, {
        "ising-train": PaperResult(93.78, None, 4.47),
        "ising-train-input": PaperResult(90.72, None, 39.64),
        "ising-infer": PaperResult(91.42, None, 4.47),
        "ising-infer-input": PaperResult(90.85, None, 39.64),
    })
    put("mnist", "784-100-50-50-25-10", {"none": 94.40, "dropout": 56.89, "dropout-input": 64.03}, {
        "ising-infer-input": PaperResult(90.74, None, 41.18, note="from the paper's text"),
    })
    # Fashion-MNIST, Table 2.
    put("fashion-mnist", "784-100-100-10", {"none": 84.24, "dropout": 77.27, "dropout-input": 74.33}, {
        "ising-train": PaperResult(82.73, None, 3.62),
        "ising-train-input": PaperResult(85.23, None, 45.07),
        "ising-infer": PaperResult(83.73, None, 3.62),
        "ising-infer-input": PaperResult(86.21, None, 45.07),
    })
    put("fashion-mnist", "784-100-50-50-10", {"none": 83.48, "dropout": 68.74, "dropout-input": 64.25,
                                              "ising-train": 80.57, "ising-train-input": 68.42,
                                              "ising-infer": 82.65, "ising-infer-input": 79.82})
    put("fashion-mnist", "784-100-50-50-25-10", {"none": 81.87, "dropout": 48.65, "dropout-input": 49.29}, {
        "ising-infer-input": PaperResult(round(81.87 - 5.84, 2), None, 55.86,
                                         note="headline: about 5.84 points below no dropout"),
    })
    # The literal-energy rows answer the same Ising rows of the paper.
    for dataset in DATASETS:
        for ours, theirs in (("ising-paper-train-input", "ising-train-input"),
                             ("ising-paper-infer-input", "ising-infer-input")):
            published = table[(dataset, "784-100-100-10", theirs)]
            table[(dataset, "784-100-100-10", ours)] = PaperResult(
                published.accuracy, published.drop_rates, published.removed_pct,
                note=f"the paper's {theirs} row")
    return table


#: ``(dataset, network, row key) -> PaperResult`` for every row of the paper's Tables 1 and 2.
PAPER: dict[tuple[str, str, str], PaperResult] = _paper_table()


def select_names(requested: Iterable[str] | None, known: Sequence[str], what: str) -> list[str]:
    """``requested`` without repeats in its own order (None: all of ``known``).

    Raises:
        ValueError: a requested name is not in ``known``, naming ``what`` it should have been.
    """
    if requested is None:
        return list(known)
    chosen = list(dict.fromkeys(requested))
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return chosen


def build_grid(*, datasets: Iterable[str] | None = None, networks: Iterable[str] | None = None,
               rows: Iterable[str] | None = None, epochs: int | None = None, limit_train: int | None = None,
               limit_test: int | None = None, val_size: int | None = None, seed: int = 0,
               patience: int | None = None, extra_rows: Iterable[Row] = ()) -> list[Run]:
    """The runs of the grid, dataset-major, in table order.

    Args:
        datasets, networks, rows: restrict the grid (None: everything); unknown names are a
            ``ValueError`` listing the known ones. A row runs only on its own networks/datasets.
        epochs: epochs of every run (None: each row's own, else :data:`DEFAULT_EPOCHS`); a row's
            ``max_epochs`` caps it.
        limit_train, limit_test, val_size, seed, patience: passed to ``spinout train``.
        extra_rows: rows beyond :data:`ROWS` (tests), always selected.
    """
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    all_rows = list(ROWS) + list(extra_rows)
    by_key = {row.key: row for row in all_rows}
    chosen_datasets = select_names(datasets, DATASETS, "dataset(s)")
    chosen_networks = select_names(networks, NETWORKS, "network(s)")
    chosen_rows = select_names(rows, [r.key for r in ROWS], "row(s)") + [r.key for r in extra_rows]
    runs = []
    for dataset in chosen_datasets:
        for network in chosen_networks:
            for key in chosen_rows:
                row = by_key[key]
                if row.key not in {r.key for r in extra_rows} and (
                        network not in row.networks or dataset not in row.datasets):
                    continue
                run_epochs = epochs if epochs is not None else (row.epochs or DEFAULT_EPOCHS)
                if row.max_epochs:
                    run_epochs = min(run_epochs, row.max_epochs)
                runs.append(Run(dataset, network, row, run_epochs, limit_train, limit_test, val_size, seed,
                                PAPER.get((dataset, network, key)), patience))
    return runs

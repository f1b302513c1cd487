"""The Ising-Dropout study's grid: settings x arms x paired seeds, each run one ``spinout train``.

Every arm of a setting keeps exactly the same per-layer counts K_l (``Setting.keep_ratio``) and
trains from the same initialisation in the same data order for a given seed (``spinout train
--seed``: the model is built right after ``torch.manual_seed(seed)``, the validation split and
the batch order are drawn from the same seed, and no arm draws random numbers while building
its network), so per-seed differences between arms are paired.

The epoch budget of each setting is fixed in :data:`SETTINGS` (``spinout study ising --list``
prints it). Run ids ``<setting>__<arm>__s<seed>`` are stable, so the study is resumable.

Interfaces of parallel work this grid assumes (kept here, in one place):

- :data:`ENERGY`: the ``--ising-energy`` the Ising arms solve (``--energy`` chooses another).
- :data:`CNN_ARGS`: the CNN setting's ``spinout train`` arguments (``--model cnn`` comes with
  the layer-agnostic variants); until then its runs fail and are reported as failed.
- exact counts: the Ising variant turns ``keep_ratio`` into ``KHotGroups`` (``exact_k``); the pruning variants
  read the same ``keep_ratio``; Bernoulli dropout gets p = 1 - keep ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .experiments import select_names

#: A run's hyperparameters beyond its arm's: ``(key, value)`` pairs, sorted; "lr" is Adam's
#: learning rate, every other key a ``--option`` (``trainer.study_tuning`` chooses them).
Config = tuple[tuple[str, str], ...]

#: The energy the Ising arms solve unless ``--energy`` says otherwise.
ENERGY = "relevance-redundancy"
#: ``spinout train`` arguments of the CNN setting (the layer-agnostic variants' ``--model``).
CNN_ARGS: tuple[str, ...] = ("--model", "cnn")
#: The paper's optimiser and batch for every setting.
LR = 0.01
BATCH_SIZE = 32
#: The study's use of the masks: ground states kept at inference (pruning, the paper's
#: training+inference mode), so that the annealer's energy minimum is what is evaluated.
MODE = "train+infer"
#: Every Ising arm: re-solve cadence (mini-batches), solve audit cadence (solves; annealer only).
SOLVE_EVERY = 8
AUDIT_EVERY = 25
#: Every Ising arm: the exact counts are k-hot groups, so a cardinality penalty would only add
#: a constant on the feasible states (and a dense block per layer: 307k couplings for 784 pixels).
ISING_OPTIONS: tuple[tuple[str, str], ...] = (("exact_k", "true"), ("cardinality_strength", "0"))
#: The annealer's budget per solve (the long anneal against which ``anneal10`` is the short one).
ANNEALER_OPTIONS: tuple[tuple[str, str], ...] = (("num_sweeps", "100"), ("num_runs", "2"),
                                                 ("full_sweeps", "400"))


@dataclass(frozen=True)
class Setting:
    """A dataset, network and epoch budget.

    Attributes:
        key: stable short name, part of the run id.
        label: the report's name for it.
        dataset, arch, activation: as in ``spinout train`` (``arch`` for the MLP).
        epochs: the budget of every arm in this setting.
        seeds: paired seeds 0..seeds-1.
        keep_input, keep_hidden: kept fractions of the input pixels and of every hidden layer.
        args: extra ``spinout train`` arguments (the CNN's ``--model``).
    """

    key: str
    label: str
    dataset: str
    arch: str
    activation: str
    epochs: int
    seeds: int
    keep_input: float = 0.6
    keep_hidden: float = 0.5
    args: tuple[str, ...] = ()

    @property
    def sizes(self) -> list[int]:
        return [int(s) for s in self.arch.split(",")]

    @property
    def keep_ratio(self) -> str:
        """One fraction per candidate layer: the input's first when the input is a candidate
        (``keep_input`` < 1), then the hidden layers' (the last value repeats for any further
        hidden layer, e.g. the CNN's four)."""
        hidden = [str(self.keep_hidden)] * (len(self.sizes) - 2)
        return ",".join(([str(self.keep_input)] if self.keep_input < 1.0 else []) + hidden)


@dataclass(frozen=True)
class Arm:
    """One method at the setting's counts.

    Attributes:
        key: stable short name, part of the run id.
        label: the report's name.
        kind: "none", "bernoulli", "ising" or "prune".
        options: ``--option`` pairs beyond the common ones.
        dropout: the ``--dropout`` variant for "prune" arms.
        settings: the settings it runs in (None: all).
        remote: solves over HTTP against ``spinout serve`` (the runner starts one).
        family: "baseline", "cheap", "annealer", "control", "compression" or "energy" (report
            grouping).
        energy: the ``--ising-energy`` of this arm when it is not the study's (an Ising arm).
    """

    key: str
    label: str
    kind: str
    family: str
    options: tuple[tuple[str, str], ...] = ()
    dropout: str = ""
    settings: tuple[str, ...] | None = None
    remote: bool = False
    energy: str | None = None


#: The epoch budget per setting, in one table (measured arithmetic in docs/ising-dropout-study.md).
SETTINGS: tuple[Setting, ...] = (
    Setting("mnist-sigmoid", "MNIST 784-100-100-10 sigmoid", "mnist", "784,100,100,10", "sigmoid",
            epochs=2, seeds=10),
    Setting("fashion-sigmoid", "Fashion-MNIST 784-100-50-50-25-10 sigmoid", "fashion-mnist",
            "784,100,50,50,25,10", "sigmoid", epochs=2, seeds=5),
    Setting("mnist-relu", "MNIST 784-100-100-10 ReLU", "mnist", "784,100,100,10", "relu",
            epochs=2, seeds=5),
    Setting("mnist-cnn", "MNIST LeNet-5-like CNN (channel gates)", "mnist", "784,100,100,10", "relu",
            epochs=2, seeds=5, keep_input=1.0, args=CNN_ARGS),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}
MAIN_SETTING = "mnist-sigmoid"

_ANNEALER = (("solver", "embedded"),) + ANNEALER_OPTIONS
ARMS: tuple[Arm, ...] = (
    Arm("none", "no dropout", "none", "baseline"),
    Arm("bernoulli", "Bernoulli dropout (p = 1 - keep)", "bernoulli", "baseline"),
    Arm("random", "random exact-K mask", "ising", "cheap", (("solver", "random"),)),
    Arm("topk", "top-K by linear field", "ising", "cheap", (("solver", "topk"),)),
    Arm("greedy", "greedy on the full energy", "ising", "cheap", (("solver", "greedy"),)),
    Arm("qpbo", "roof duality (QPBO) + greedy", "ising", "cheap", (("solver", "qpbo"),)),
    Arm("anneal10", "10-sweep anneal", "ising", "cheap", (("solver", "anneal10"),)),
    Arm("annealer", "the annealer", "ising", "annealer", _ANNEALER + (("audit_every", str(AUDIT_EVERY)),)),
    Arm("annealer-http", "the annealer over HTTP", "ising", "annealer", ANNEALER_OPTIONS,
        settings=(MAIN_SETTING,), remote=True),
    Arm("shuffled-couplings", "annealer, couplings shuffled per layer block", "ising", "control",
        _ANNEALER + (("control", "shuffled-couplings"),)),
    Arm("shuffled-mask", "annealer, mask shuffled per layer", "ising", "control",
        _ANNEALER + (("control", "shuffled-mask"),)),
    Arm("other-batch", "annealer, mask from another mini-batch", "ising", "control",
        _ANNEALER + (("control", "other-batch"),)),
    # The trainer's former default energy at the same counts: what the choice of energy is worth.
    Arm("annealer-saliency", "the annealer on the `saliency` energy", "ising", "energy", _ANNEALER,
        energy="saliency"),
    Arm("prune-magnitude", "magnitude pruning (L1 of outgoing weights)", "prune", "compression",
        dropout="prune-magnitude"),
    Arm("prune-taylor", "Taylor pruning (Molchanov et al.)", "prune", "compression",
        dropout="prune-taylor"),
)
ARMS_BY_KEY = {a.key: a for a in ARMS}

#: ``--quick``: a few arms on the main setting, 2 seeds, tiny data, 1 epoch.
QUICK_ARMS = ("none", "bernoulli", "topk", "greedy", "annealer", "shuffled-mask", "prune-taylor")
QUICK_SEEDS = 2
QUICK_EPOCHS = 1
QUICK_LIMIT_TRAIN = 1000
QUICK_LIMIT_TEST = 1000
QUICK_VAL_SIZE = 300


@dataclass(frozen=True)
class StudyRun:
    """One arm in one setting with one seed (the shape ``reproduce_command.execute`` runs)."""

    setting: Setting
    arm: Arm
    seed: int
    epochs: int
    energy: str = ENERGY
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int | None = None
    url: str | None = None
    extra: tuple[str, ...] = field(default=())
    config: Config = ()
    tuning: bool = False

    @property
    def run_id(self) -> str:
        """``<setting>__<arm>[@<config>]__s<seed>``, ``tune__`` first for a tuning run: a
        configuration other than the default is part of the id."""
        arm = self.arm.key + ("@" + ",".join(f"{k}={v}" for k, v in self.config) if self.config else "")
        return f"{'tune__' if self.tuning else ''}{self.setting.key}__{arm}__s{self.seed}"

    @property
    def dataset(self) -> str:
        return self.setting.dataset

    @property
    def relative_cost(self) -> float:
        """Epochs x weights, times the measured slowdown of the arm's solver at its cadence
        (longest first)."""
        sizes = self.setting.sizes
        weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        factor = {"none": 1.0, "bernoulli": 1.0, "prune": 1.1}.get(self.arm.kind, 0.0)
        if not factor:
            solver = dict(self.arm.options).get("solver", "embedded")
            slowdown = {"random": 1.2, "topk": 1.2, "greedy": 1.6, "qpbo": 2.5, "anneal10": 1.4}.get(solver, 3.0)
            factor = 1.0 + (slowdown - 1.0) * SOLVE_EVERY / int(dict(self.config).get("solve_every", SOLVE_EVERY))
        return self.epochs * weights * factor

    def train_args(self, data_dir: str | None = None) -> list[str]:
        """The ``spinout train`` arguments of this run (without ``--out``)."""
        s, arm = self.setting, self.arm
        config = dict(self.config)
        lr = config.pop("lr", str(LR))
        args = ["--dataset", s.dataset, "--arch", s.arch, "--activation", s.activation,
                "--epochs", str(self.epochs), "--seed", str(self.seed), "--lr", lr,
                "--batch-size", str(BATCH_SIZE), "--mode", MODE, "--threads", "1", "--no-progress",
                *s.args]
        if data_dir is not None:
            args += ["--data-dir", data_dir]
        include_input = s.keep_input < 1.0
        if include_input:
            args.append("--include-input")
        if arm.kind == "none":
            args += ["--dropout", "none"]
        elif arm.kind == "bernoulli":
            args += ["--dropout", "dropout", "--p", str(round(1 - s.keep_hidden, 6))]
            if include_input:
                args += ["--option", f"p_input={round(1 - s.keep_input, 6)}"]
        elif arm.kind == "prune":
            args += ["--dropout", arm.dropout, "--option", f"keep_ratio={s.keep_ratio}",
                     "--option", f"prune_epoch={max(1, self.epochs // 2)}"]
        else:
            args += ["--dropout", "ising", "--ising-energy", arm.energy or self.energy, "--keep-ratio", s.keep_ratio,
                     "--option", f"solve_every={SOLVE_EVERY}"]
            for key, value in ISING_OPTIONS:
                args += ["--option", f"{key}={value}"]
            options = dict(arm.options)
            if arm.remote:
                if self.url is None:
                    raise ValueError(f"arm {arm.key} needs a service URL")
                options["solver"] = self.url
            for key, value in options.items():
                args += ["--option", f"{key}={value}"]
        # the configuration's options come last: a later --option overrides an earlier one
        for key, value in config.items():
            args += ["--option", f"{key}={value}"]
        for flag, value in (("--limit-train", self.limit_train), ("--limit-test", self.limit_test),
                            ("--val-size", self.val_size)):
            if value is not None:
                args += [flag, str(value)]
        return args + list(self.extra)


def build_study(*, settings: Iterable[str] | None = None, arms: Iterable[str] | None = None,
                seeds: int | None = None, epochs: int | None = None, energy: str = ENERGY,
                limit_train: int | None = None, limit_test: int | None = None,
                val_size: int | None = None, url: str | None = None,
                configs: Mapping[str, Config] | None = None) -> list[StudyRun]:
    """The study's runs, setting-major, then arm, then seed.

    Args:
        settings, arms: restrict the grid (None: all); unknown names are a ``ValueError``.
        seeds: seeds per setting (None: each setting's own count).
        epochs: override every setting's epoch budget (``--quick``).
        energy: the Ising arms' ``--ising-energy``.
        limit_train, limit_test, val_size: data limits (``--quick``).
        url: the service URL the remote arm solves against.
        configs: each arm's tuned configuration (``study_tuning.configs``; missing: the default).
    """
    chosen_settings = select_names(settings, [s.key for s in SETTINGS], "setting(s)")
    chosen_arms = select_names(arms, [a.key for a in ARMS], "arm(s)")
    if seeds is not None and seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    runs = []
    for skey in chosen_settings:
        setting = SETTINGS_BY_KEY[skey]
        for akey in chosen_arms:
            arm = ARMS_BY_KEY[akey]
            if arm.settings is not None and skey not in arm.settings:
                continue
            for seed in range(seeds if seeds is not None else setting.seeds):
                runs.append(StudyRun(setting, arm, seed, epochs or setting.epochs, energy, limit_train,
                                     limit_test, val_size, url if arm.remote else None,
                                     config=(configs or {}).get(akey, ())))
    return runs


def budget_table() -> str:
    """The epoch budget per setting as a Markdown table (printed by ``--list`` and the report)."""
    lines = ["| setting | dataset | network | activation | epochs | seeds | kept (input, hidden) |",
             "|---|---|---|---|---:|---:|---|"]
    for s in SETTINGS:
        network = "CNN" if s.args == CNN_ARGS else s.arch.replace(",", "-")
        lines.append(f"| {s.key} | {s.dataset} | {network} | {s.activation} | {s.epochs} | {s.seeds} | "
                     f"{s.keep_input if s.keep_input < 1 else '-'}, {s.keep_hidden} |")
    return "\n".join(lines)

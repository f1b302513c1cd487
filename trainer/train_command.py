"""``spinout train``: train one network (MLP or CNN) with a dropout variant and report its metrics.

The last line of standard output is one JSON object (the run's metrics) so scripts and the
reproduction grid can read it; the progress bar goes to standard error and a readable summary
table precedes the JSON line. ``--out DIR`` also writes the JSON, the masks, the training curves
and, with the input layer included, the kept-pixel mask as an image.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .data import DATASETS

#: Dedicated flags that are really variant options: (flag dest, option key).
_OPTION_FLAGS = (("lambda_in", "lambda_in"), ("lambda_out", "lambda_out"), ("ising_energy", "ising_energy"),
                 ("solve_every", "solve_every"), ("num_sweeps", "num_sweeps"), ("solver", "solver"),
                 ("keep_ratio", "keep_ratio"))


def _variant_names() -> list[str]:
    from .dropout import registry
    return registry.names()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps hyphenated variant names (``dropalan-beta-scaled``) whole when help text wraps, and
    the epilog's one-variant-per-line layout."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _variant_epilog() -> str:
    import textwrap

    from .dropout import registry
    lines = ["variant options (--option KEY=VALUE; others are rejected):"]
    for name in registry.names():
        known = sorted(registry.known_options(name))
        lines += textwrap.wrap(f"{name}: {', '.join(known) if known else '(none)'}", 78,
                               initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``parser``."""
    names = _variant_names()
    parser.formatter_class = _HelpFormatter
    parser.epilog = _variant_epilog()
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the four IDX .gz files (default: $SPINOUT_DATA_DIR, "
                             "then ~/.cache/spinout/<dataset>, downloading what is missing)")
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",  # models.MODELS
                        help="the network: an MLP of --arch, or the LeNet-5-like CNN (28x28 images; "
                             "conv 6 and 16 channels, fc 120 and 84 units)")
    parser.add_argument("--arch", default="784,100,100,10", help="MLP layer sizes, input first")
    parser.add_argument("--activation", default=None, choices=("sigmoid", "relu", "selu", "identity"),
                        help="hidden units (default: sigmoid as in the paper; 'alpha' always uses selu, and "
                             "DropAlan layers have none)")
    parser.add_argument("--dropout", default="ising", choices=names, metavar="NAME",
                        help=f"dropout variant, one of: {', '.join(names)} (default: ising)")
    parser.add_argument("--include-input", action="store_true", help="make the input layer a candidate")
    parser.add_argument("--mode", choices=("train", "train+infer"), default="train",
                        help="masks while training only, or also at inference (compression)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--lr-decay", choices=("none", "linear"), default="none",  # harness.LR_DECAYS
                        help="learning-rate schedule: constant, or linear decay over the epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patience", type=int, default=None,
                        help="early stopping: epochs without a better validation accuracy")
    parser.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    parser.add_argument("--limit-train", type=int, default=None, help="train on this many images only")
    parser.add_argument("--limit-test", type=int, default=None, help="test on this many images only")
    parser.add_argument("--max-steps-per-epoch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--p", type=float, default=None, help="drop probability (random variants)")
    parser.add_argument("--lambda-in", type=float, default=None, help="DropNeuron incoming-group weight")
    parser.add_argument("--lambda-out", type=float, default=None, help="DropNeuron outgoing-group weight")
    parser.add_argument("--solver", default=None,
                        help="Ising: 'embedded' (default), a service URL, or a cheap solver: random, topk, "
                             "greedy, qpbo, anneal10")
    parser.add_argument("--ising-energy", default=None,
                        choices=("saliency", "paper", "relevance-redundancy", "paper-repaired",
                                 "loss-aware"),  # ising_energy.ENERGIES (not imported: CLI start-up)
                        help="Ising: the energy (docs/ising-dropout.md); default saliency, 'paper' is "
                             "eq. 5 literally")
    parser.add_argument("--solve-every", type=int, default=None, help="Ising: re-solve every k mini-batches")
    parser.add_argument("--num-sweeps", type=int, default=None, help="Ising: annealing sweeps per solve")
    parser.add_argument("--keep-ratio", default=None,
                        help="Ising: cardinality target, one fraction or one per layer (e.g. 0.6,0.7,0.75)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a variant option, repeatable (e.g. --option estimator=knn); each "
                             "variant's valid keys are listed below")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="directory for the JSON, masks and plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-pruning-timing", action="store_true",
                        help="skip the inference timing of the full and the pruned network")


def parse_options(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a clear error on a missing ``=``."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


def _error(message: str) -> int:
    print(f"spinout train: error: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    import torch

    from .data import DataError, load_dataset
    from .dropout import VariantSpec, registry
    from .harness import train
    from .models import parse_sizes

    try:
        sizes = parse_sizes(args.arch)
        options: dict[str, Any] = parse_options(args.option)
        for dest, key in _OPTION_FLAGS:
            value = getattr(args, dest, None)
            if value is not None:
                options[key] = value
        for name, value in (("epochs", args.epochs), ("batch size", args.batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not (args.lr > 0 and math.isfinite(args.lr)):
            raise ValueError(f"learning rate must be a positive number, got {args.lr}")
        if args.threads < 1:
            raise ValueError(f"threads must be >= 1, got {args.threads}")
        registry.check_options(args.dropout, options)
    except ValueError as exc:
        return _error(str(exc))
    torch.set_num_threads(args.threads)
    try:
        data = load_dataset(args.dataset, args.data_dir, val_size=args.val_size, limit_train=args.limit_train,
                            limit_test=args.limit_test, seed=args.seed)
    except (DataError, ValueError) as exc:
        return _error(str(exc))
    if args.model == "cnn":  # the CNN reads the input and output sizes only
        sizes = [data.num_features, data.num_classes]
    if data.num_features != sizes[0]:
        return _error(f"the architecture's input size {sizes[0]} does not match the data's "
                      f"{data.num_features} features")
    if sizes[-1] < data.num_classes:
        return _error(f"the output layer has {sizes[-1]} units for {data.num_classes} classes")
    activation = args.activation or ("selu" if args.dropout == "alpha" else "sigmoid")
    torch.manual_seed(args.seed)
    try:
        spec = VariantSpec(sizes=sizes, include_input=args.include_input, p=args.p, mode=args.mode,
                           activation=activation, seed=args.seed, options=options,
                           num_train=int(data.train_x.shape[0]), model=args.model)
        model = registry.get(args.dropout)(spec)
    except (ValueError, KeyError) as exc:
        return _error(str(exc).strip("'\""))
    if args.model == "cnn":
        sizes = list(getattr(model, "sizes", sizes))  # the CNN's units per layer, for the report
    # Some variants fix their own units (alpha: SELU): report what was built.
    activation = str(getattr(model, "activation_name", activation))
    if args.activation is not None and args.activation != activation:
        print(f"spinout train: note: --activation {args.activation} does not apply to {args.dropout}, "
              f"whose network uses {activation}", file=sys.stderr)

    def on_epoch(record: Any) -> None:
        rates = " ".join(f"h{i}={r:.1f}%" for i, r in enumerate(record.drop_rate_per_layer))
        print(f"epoch {record.epoch:3d}  loss {record.loss:.4f}  train {record.train_accuracy:6.2f}%  "
              f"val {record.val_accuracy:6.2f}%  {rates}  {record.seconds:.1f}s", flush=True)

    try:
        result = train(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, patience=args.patience, progress=not args.no_progress,
                       max_steps_per_epoch=args.max_steps_per_epoch, lr_decay=args.lr_decay,
                       on_epoch=on_epoch)
    except (ValueError, FloatingPointError, RuntimeError) as exc:
        return _error(str(exc))
    from .pruning import pruning_report, weight_sparsity
    try:
        pruning = pruning_report(model, data.test_x, data.test_y, repeats=0 if args.no_pruning_timing else 7)
    except ValueError as exc:
        pruning = {"error": str(exc)}
    summary = result_json(args, sizes, activation, options, result, pruning, weight_sparsity(model))
    print(summary_table(summary))
    if args.out:
        write_outputs(Path(args.out), summary, model, result)
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0


def code_commit() -> str | None:
    """The git commit of the code that runs (``<sha>-dirty`` when tracked files outside docs/
    differ from it), None outside a git checkout: every result.json names the code it came from."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        # The studies write their runs and reports under docs/: those are outputs, not code.
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", ".", ":(exclude)docs"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def result_json(args: argparse.Namespace, sizes: list[int], activation: str, options: dict[str, Any],
                result: Any, pruning: dict[str, Any] | None = None,
                sparsity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's metrics as one JSON-ready dict (the CLI's last line).

    ``structured_pruning`` (:func:`trainer.pruning.pruning_report`, None unless the final keep
    masks are 0/1): units kept, parameters and MACs per sample of the full and the physically
    pruned network, their measured inference times. ``weight_sparsity``
    (:func:`trainer.pruning.weight_sparsity`, None for methods without): zero weights apart from
    units, and DropConnect's training-time drop rate.
    """
    per_step = result.seconds_per_step
    return {
        "dataset": args.dataset,
        "model": getattr(args, "model", "mlp"),
        "arch": ",".join(map(str, sizes)),
        "activation": activation,
        "dropout": args.dropout,
        "include_input": bool(args.include_input),
        "mode": args.mode,
        "test_accuracy": round(result.test_accuracy, 4),
        "test_nll": _finite(result.test_nll),
        "best_val_accuracy": round(result.best_val_accuracy, 4),
        "best_epoch": result.best_epoch,
        "drop_rate_per_layer": {f"h{i}": round(r, 4) for i, r in enumerate(result.drop_rate_per_layer)},
        "params_total": result.params_total,
        "params_removed_pct": round(result.params_removed_pct, 4),
        "compression_ratio": _finite(result.compression_ratio),
        "params_total_exact": result.params_total_exact,
        "params_removed_pct_exact": round(result.params_removed_pct_exact, 4),
        "params_exact_basis": result.params_exact_basis,
        "epoch_selection": result.selection,
        "epochs": result.epochs_run,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "ms_per_step": {k: round(1000 * v, 4) for k, v in per_step.items()},
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_decay": args.lr_decay,
        "seed": args.seed,
        "p": args.p,
        "options": {k: str(v) for k, v in options.items()},
        "limit_train": args.limit_train,
        "structured_pruning": _rounded(pruning),
        "weight_sparsity": _rounded(sparsity),
        "log": result.log,
        "history": [{"epoch": h.epoch, "loss": _finite(h.loss), "train_accuracy": _finite(h.train_accuracy),
                     "val_accuracy": _finite(h.val_accuracy), "seconds": round(h.seconds, 3),
                     "drop_rate_per_layer": [round(r, 4) for r in h.drop_rate_per_layer]}
                    for h in result.history],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_commit": code_commit(),
    }


def summary_table(summary: dict[str, Any]) -> str:
    """A small aligned table for humans."""
    rates = ", ".join(f"{k} {v:.2f}%" for k, v in summary["drop_rate_per_layer"].items()) or "-"
    steps = summary["ms_per_step"]
    timing = ", ".join(f"{k} {v:.3f}" for k, v in steps.items() if v > 0)
    rows = [
        ("dataset / model", f"{summary['dataset']} / {summary.get('model', 'mlp')} {summary['arch']} "
                            f"({summary['activation']})"),
        ("dropout", f"{summary['dropout']} (mode {summary['mode']}, input "
                    f"{'included' if summary['include_input'] else 'excluded'})"),
        ("test accuracy", f"{summary['test_accuracy']:.2f}%"),
        ("best val accuracy", f"{summary['best_val_accuracy']:.2f}% (epoch {summary['best_epoch']}, "
                              f"{summary['epoch_selection']})"),
        ("units dropped", rates),
        ("params removed", f"{summary['params_removed_pct']:.2f}% of {summary['params_total']} (eq. 6), "
                           f"ratio {summary['compression_ratio']}"),
        ("params removed, exact", f"{summary['params_removed_pct_exact']:.2f}% of {summary['params_total_exact']} "
                                  f"({summary['params_exact_basis'] or '-'})"),
        ("structured pruning", _pruning_line(summary.get("structured_pruning"))),
        ("epochs / time", f"{summary['epochs']} epochs, {summary['steps']} steps, {summary['seconds']:.1f}s"),
        ("ms per step", timing or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 3 + max(len(v) for _, v in rows))
    return "\n".join([line] + [f"{k:<{width}} | {v}" for k, v in rows] + [line])


def _pruning_line(report: dict[str, Any] | None) -> str:
    if not report:
        return "- (keep masks not 0/1)"
    if "params_pruned" not in report:
        return f"- ({report.get('error')})"
    line = (f"params {report['params_full']} -> {report['params_pruned']}, "
            f"MACs {report['macs_full']} -> {report['macs_pruned']}")
    if report.get("inference_ms_pruned") is not None:
        line += f", {report['inference_ms_full']:.2f} -> {report['inference_ms_pruned']:.2f} ms"
    return line


def write_outputs(out: Path, summary: dict[str, Any], model: Any, result: Any) -> None:
    """result.json, masks.npz / masks.pt, curves.png (loss, accuracy, drop rates per epoch) and,
    with the input layer included, input_mask.png (the kept pixels, like the paper's Fig. 4)."""
    import numpy as np
    import torch

    from .harness import keep_masks

    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    masks = keep_masks(model) or []
    arrays = {f"h{i}": m.numpy() for i, m in enumerate(masks)}
    if arrays:
        np.savez(out / "masks.npz", **arrays)
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, out / "masks.pt")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in result.history]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
    ax1.plot(epochs, [r.loss for r in result.history], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot(epochs, [r.train_accuracy for r in result.history], marker="o", label="train (masked)")
    ax2.plot(epochs, [r.val_accuracy for r in result.history], marker="o", label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    for layer in range(len(result.history[0].drop_rate_per_layer) if result.history else 0):
        ax3.plot(epochs, [r.drop_rate_per_layer[layer] for r in result.history], marker="o", label=f"h{layer}")
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("units dropped (%)")
    ax3.set_ylim(-2, 102)
    if result.history and result.history[0].drop_rate_per_layer:
        ax3.legend()
    fig.suptitle(f"{summary['dataset']} {summary['arch']} {summary['dropout']} ({summary['mode']})")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    if summary["include_input"] and masks:
        side = int(round(math.sqrt(masks[0].numel())))
        if side * side == masks[0].numel():
            fig, ax = plt.subplots(figsize=(3, 3))
            ax.imshow(masks[0].numpy().reshape(side, side), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"kept pixels ({100 - summary['drop_rate_per_layer']['h0']:.1f}%)")
            ax.axis("off")
            fig.tight_layout()
            fig.savefig(out / "input_mask.png", dpi=100)
            plt.close(fig)

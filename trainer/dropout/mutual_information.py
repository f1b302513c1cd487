"""Mutual-Information Dropout (Song, Chen & Xia 2023): drop the units that say little about the label.

The network first trains without dropout (the harness's epochs). Then, in ``finish_training``:

1. estimate for every candidate unit ``I(a; y) = H(a) - H(a | y)`` between its activation and
   the 10-class label on a sample of the training set — a histogram estimator (equal-frequency
   bins, Miller-Madow bias correction) by default, the k-nearest-neighbour estimator (k = 3,
   Ross 2014, as scikit-learn's ``mutual_info_classif`` and the reference notebooks) as an
   option;
2. choose the threshold ``t`` on the validation split: candidates run from high to low (MI
   quantiles 95 %, 90 %, ..., 5 % of the candidate units); at each, the units with MI below
   ``t`` are masked and the validation accuracy measured; the first — highest — ``t`` whose
   accuracy is no longer notably below the unmasked network's (within ``tolerance``
   percentage points) is kept. This is our reading of "start high and lower it until
   validation accuracy drops notably": lowering ``t`` drops fewer units, so we stop at the
   most aggressive threshold the validation split tolerates;
3. mask those units for good (training and inference) and retrain ``retrain_epochs`` epochs. A
   masked unit outputs a constant, its mean activation (``fill="mean"``, default), so it is
   removable (the next layer's bias absorbs it) and masking does not shift the next layer's
   input; ``fill="zero"`` is the plain mask;
4. log the per-layer average MI before (all units) and after (kept units) retraining.

MI is in nats. Masks are applied in both training and inference (the method removes units), so
``mode`` has no effect. On a CNN a unit is a channel: its activation is its spatial mean, its
mask and fill cover the whole channel.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ..models import unit_broadcast, unit_mean
from .base import HarnessContext, VariantModel, VariantSpec, build_network
from .registry import register

ESTIMATORS = ("histogram", "knn")


def histogram_mutual_information(activations: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None,
                                 bins: int = 30, bias_correction: bool = True,
                                 binning: str = "quantile") -> torch.Tensor:
    """Per-unit ``I(a; y)`` in nats from histograms, vectorised over units.

    Args:
        activations: (n, units) real values.
        labels: (n,) integer classes in ``[0, num_classes)``.
        num_classes: defaults to ``labels.max() + 1``.
        bins: bins per unit.
        bias_correction: subtract the Miller-Madow bias ``(cells_ay - cells_a - cells_y + 1) / 2n``
            (plug-in MI overestimates by about that much); results are clipped at 0.
        binning: "quantile" (equal-frequency bins, default: like MI itself, invariant to any
            monotone map of the activation, so saturated sigmoid units are binned as finely
            as linear ones; tied values share a bin) or "uniform" (equal width between the
            unit's minimum and maximum).

    Returns:
        (units,) float64 tensor.

    Raises:
        ValueError: mismatched shapes, fewer than 2 samples, ``bins < 2`` or an unknown binning.
    """
    a, y, n, num_classes = _check_inputs(activations, labels, num_classes)
    if bins < 2:
        raise ValueError(f"need at least 2 bins, got {bins}")
    units = a.shape[1]
    if binning == "quantile":
        q = torch.linspace(0.0, 1.0, bins + 1, dtype=a.dtype)[1:-1]
        edges = torch.quantile(a, q, dim=0).t().contiguous()  # (units, bins - 1), sorted per unit
        idx = torch.searchsorted(edges, a.t().contiguous(), right=True).t()  # (n, units) in [0, bins)
    elif binning == "uniform":
        lo, hi = a.min(dim=0).values, a.max(dim=0).values
        width = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        idx = ((a - lo) / width * bins).long().clamp_(0, bins - 1)
    else:
        raise ValueError(f"binning must be 'quantile' or 'uniform', got {binning!r}")
    flat = (torch.arange(units).unsqueeze(0) * bins + idx) * num_classes + y.unsqueeze(1)
    joint = torch.bincount(flat.reshape(-1), minlength=units * bins * num_classes)
    joint = joint.reshape(units, bins, num_classes).double() / n
    p_a = joint.sum(dim=2, keepdim=True)
    p_y = joint.sum(dim=1, keepdim=True)
    ratio = joint / (p_a * p_y).clamp_min(1e-300)
    mi = torch.where(joint > 0, joint * torch.log(ratio.clamp_min(1e-300)), torch.zeros_like(joint)).sum(dim=(1, 2))
    if bias_correction:
        cells_ay = (joint > 0).sum(dim=(1, 2))
        cells_a = (p_a.squeeze(2) > 0).sum(dim=1)
        cells_y = int((torch.bincount(y, minlength=num_classes) > 0).sum())
        mi = mi - (cells_ay - cells_a - cells_y + 1).double() / (2.0 * n)
    return mi.clamp_min(0.0)


def knn_mutual_information(activations: torch.Tensor, labels: torch.Tensor, k: int = 3,
                           seed: int = 0) -> torch.Tensor:
    """Per-unit ``I(a; y)`` in nats with the k-NN estimator for a continuous/discrete pair.

    Ross (2014), the estimator of scikit-learn's ``mutual_info_classif``:
    ``psi(n) + psi(k) - <psi(n_y)> - <psi(m)>`` where, for each sample, the distance to its k-th
    nearest neighbour of the same class bounds a window holding ``m`` samples of any class.
    In one dimension the k nearest neighbours sit among the k on either side in sorted order, so
    the whole estimate is sorts and ``searchsorted`` over all units at once. Each unit is scaled
    to unit variance and jittered by 1e-10 (seeded) to break ties, as scikit-learn does; a
    constant unit gets exactly 0.

    Raises:
        ValueError: mismatched shapes, fewer than 2 samples, or ``k < 1``.
    """
    a, y, n, _ = _check_inputs(activations, labels, None)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    std = a.std(dim=0)
    a = a / torch.where(std > 0, std, torch.ones_like(std))
    gen = torch.Generator().manual_seed(seed)
    a = a + 1e-10 * a.abs().mean(dim=0).clamp_min(1.0) * torch.randn(a.shape, generator=gen, dtype=a.dtype)
    radius = torch.empty_like(a)
    k_per = torch.zeros(n, dtype=torch.float64)
    class_size = torch.zeros(n, dtype=torch.float64)
    usable = torch.zeros(n, dtype=torch.bool)
    for c in torch.unique(y):
        rows = (y == c).nonzero().squeeze(1)
        count = rows.numel()
        class_size[rows] = count
        if count < 2:
            continue
        kc = min(k, count - 1)
        xs, order = a[rows].sort(dim=0)  # (count, units)
        pad = torch.full((kc, a.shape[1]), math.inf, dtype=a.dtype)
        padded = torch.cat([pad, xs, pad])  # (count + 2 kc, units)
        windows = padded.unfold(0, 2 * kc + 1, 1)  # (count, units, 2 kc + 1)
        dist = (windows - xs.unsqueeze(2)).abs()
        dist[:, :, kc] = math.inf  # the sample itself
        kth = dist.kthvalue(kc, dim=2).values  # (count, units), in sorted order
        back = torch.empty_like(kth)
        back.scatter_(0, order, kth)
        radius[rows] = back
        k_per[rows] = kc
        usable[rows] = True
    a, radius = a[usable], radius[usable]
    k_per, class_size = k_per[usable], class_size[usable]
    m = a.shape[0]
    if m < 2:
        return torch.zeros(activations.shape[1], dtype=torch.float64)
    sorted_all = a.t().contiguous().sort(dim=1).values  # (units, m)
    lo = torch.searchsorted(sorted_all, (a - radius).t().contiguous(), right=True)
    hi = torch.searchsorted(sorted_all, (a + radius).t().contiguous(), right=False)
    within = (hi - lo).clamp_min(1).double()  # points strictly inside the radius, itself included
    mi = (torch.digamma(torch.tensor(float(m), dtype=torch.float64)) + torch.digamma(k_per).mean()
          - torch.digamma(class_size).mean() - torch.digamma(within).mean(dim=1))
    return torch.where(std > 0, mi, torch.zeros_like(mi)).clamp_min(0.0)  # a constant unit: exactly 0


def mutual_information(activations: torch.Tensor, labels: torch.Tensor, estimator: str = "histogram",
                       **kwargs: object) -> torch.Tensor:
    """Dispatch to :func:`histogram_mutual_information` or :func:`knn_mutual_information`."""
    if estimator == "histogram":
        return histogram_mutual_information(activations, labels, **kwargs)  # type: ignore[arg-type]
    if estimator == "knn":
        return knn_mutual_information(activations, labels, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"MI estimator must be one of {ESTIMATORS}, got {estimator!r}")


def _check_inputs(activations: torch.Tensor, labels: torch.Tensor, num_classes: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    if activations.dim() != 2 or labels.dim() != 1 or activations.shape[0] != labels.shape[0]:
        raise ValueError(f"need activations (n, units) and labels (n,), got {tuple(activations.shape)} "
                         f"and {tuple(labels.shape)}")
    n = activations.shape[0]
    if n < 2:
        raise ValueError("need at least 2 samples to estimate mutual information")
    y = labels.long()
    if bool((y < 0).any()):
        raise ValueError("labels must be non-negative integers")
    classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if int(y.max()) >= classes:
        raise ValueError(f"label {int(y.max())} is outside [0, {classes})")
    return activations.detach().double().cpu(), y.cpu(), n, classes


def apply_unit_mask(h: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Kept units (``mask`` 1) pass; dropped ones (``mask`` 0) output their constant ``fill``.

    ``h`` is (batch, n) or (batch, C, ...); ``mask`` and ``fill`` are per unit, (n,).

    A dropped unit that outputs a constant is removable: the next layer folds ``W[:, j] * fill_j``
    into its bias. Filling with the unit's mean rather than 0 keeps the next layer's input
    centred where training left it, which matters for sigmoid units (a low-MI sigmoid unit is
    nearly constant, often near 1, and zeroing it would shift every unit it feeds).
    """
    mask = unit_broadcast(mask, h)
    if fill is None:
        return h * mask
    return h * mask + unit_broadcast(fill, h) * (1.0 - mask)


class FilledUnitMask(nn.Module):
    """A fixed per-unit mask with a fill value for dropped units (buffers, saved with the state
    dict), active in train and eval."""

    mask: torch.Tensor
    fill: torch.Tensor

    def __init__(self, num_units: int) -> None:
        super().__init__()
        if num_units < 1:
            raise ValueError(f"a layer needs at least one unit, got {num_units}")
        self.register_buffer("mask", torch.ones(num_units))
        self.register_buffer("fill", torch.zeros(num_units))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return apply_unit_mask(h, self.mask, self.fill)

    def unit_keep_mask(self, num_units: int) -> torch.Tensor:
        return self.mask.detach().clone()

    def extra_repr(self) -> str:
        return f"num_units={self.mask.numel()}, kept={int(self.mask.sum())}"


class MutualInformationDropout(VariantModel):
    """A network with a :class:`FilledUnitMask` on every candidate layer, set by MI after training.

    Args:
        spec: the network (``model``, ``sizes``, ``activation``, ``include_input``).
        estimator: "histogram" (default) or "knn".
        bins, binning: histogram bins and their placement ("quantile" or "uniform").
        k: neighbours of the k-NN estimator.
        samples: training images used to estimate MI (a seeded random subset).
        tolerance: validation-accuracy drop, in percentage points, still not "notable".
        retrain_epochs: epochs of retraining with the masks (None: a quarter of the epochs
            already run, at least one).
        fill: what a dropped unit outputs: "mean" (its mean activation on the MI sample, a
            constant the next layer's bias absorbs; default) or "zero" (a plain mask).
        seed: seeds the sample and the k-NN jitter.
    """

    def __init__(self, spec: VariantSpec, estimator: str = "histogram", bins: int = 30, binning: str = "quantile", k: int = 3,
                 samples: int = 10_000,
                 tolerance: float = 1.0, retrain_epochs: int | None = None, fill: str = "mean",
                 seed: int = 0) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"MI estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if fill not in ("mean", "zero"):
            raise ValueError(f"fill must be 'mean' or 'zero', got {fill!r}")
        if binning not in ("quantile", "uniform"):
            raise ValueError(f"binning must be 'quantile' or 'uniform', got {binning!r}")
        if bins < 2 or k < 1 or samples < 2:
            raise ValueError(f"need bins >= 2, k >= 1, samples >= 2; got {bins}, {k}, {samples}")
        if not tolerance >= 0.0:
            raise ValueError(f"tolerance must be >= 0 percentage points, got {tolerance}")
        if retrain_epochs is not None and retrain_epochs < 0:
            raise ValueError(f"retrain_epochs must be >= 0, got {retrain_epochs}")
        super().__init__(build_network(spec, gates=lambda layer, n: FilledUnitMask(n)))
        self.estimator, self.bins, self.binning = estimator, int(bins), binning
        self.k, self.samples = int(k), int(samples)
        self.tolerance, self.retrain_epochs, self.seed = float(tolerance), retrain_epochs, int(seed)
        self.fill = fill

    def unit_mask(self, layer: int) -> FilledUnitMask:
        return cast(FilledUnitMask, self.network.gates[layer])

    def candidate_layers(self) -> list[int]:
        return [layer for layer, m in enumerate(self.network.gates) if isinstance(m, FilledUnitMask)]

    @torch.no_grad()
    def masked_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit activations (batch, n_l) of layers 0..N as the next layer sees them (masks
        applied; channels: spatial means)."""
        return [unit_mean(h) for h in self.network.layer_outputs(x, gated=True)]

    def unit_mutual_information(self, x: torch.Tensor, y: torch.Tensor) -> dict[int, torch.Tensor]:
        """MI of every candidate unit with the label, per candidate layer."""
        acts = self.masked_activations(x)
        options = ({"bins": self.bins, "binning": self.binning} if self.estimator == "histogram"
                   else {"k": self.k, "seed": self.seed})
        return {layer: mutual_information(acts[layer], y, self.estimator, **options)
                for layer in self.candidate_layers()}

    def _set_masks(self, mi: dict[int, torch.Tensor], threshold: float) -> None:
        for layer, values in mi.items():
            keep = (values >= threshold).float()
            if keep.sum() == 0:  # never empty a layer: keep its most informative unit
                keep[int(values.argmax())] = 1.0
            self.unit_mask(layer).mask.copy_(keep)

    def _reset_masks(self) -> None:
        for layer in self.candidate_layers():
            self.unit_mask(layer).mask.fill_(1.0)

    @torch.no_grad()
    def _set_fills(self, x: torch.Tensor) -> None:
        """Each candidate unit's mean activation on ``x`` (masks all open), or 0 with ``fill="zero"``."""
        self._reset_masks()
        acts = self.masked_activations(x)
        for layer in self.candidate_layers():
            fill = acts[layer].mean(dim=0) if self.fill == "mean" else torch.zeros_like(acts[layer][0])
            self.unit_mask(layer).fill.copy_(fill)

    def choose_threshold(self, mi: dict[int, torch.Tensor], context: HarnessContext) -> tuple[float, float, float]:
        """(threshold, validation accuracy there, unmasked validation accuracy); see the module doc."""
        data = context.data
        self._reset_masks()
        baseline = context.evaluate(data.val_x, data.val_y)
        values = torch.cat(list(mi.values()))
        candidates = torch.quantile(values, torch.linspace(0.95, 0.05, 19, dtype=values.dtype))
        for t in candidates.tolist():
            self._set_masks(mi, t)
            acc = context.evaluate(data.val_x, data.val_y)
            if acc >= baseline - self.tolerance:
                return float(t), acc, baseline
        self._reset_masks()
        return 0.0, baseline, baseline

    def finish_training(self, context: HarnessContext) -> None:
        """Estimate MI, choose the threshold on validation, mask, retrain, log MI before/after."""
        data = context.data
        gen = torch.Generator().manual_seed(self.seed)
        n = data.train_x.shape[0]
        idx = torch.randperm(n, generator=gen)[:min(self.samples, n)]
        x, y = data.train_x[idx], data.train_y[idx]
        was_training = self.training
        self.eval()
        self._set_fills(x)
        mi_before = self.unit_mutual_information(x, y)
        threshold, val_at_threshold, val_unmasked = self.choose_threshold(mi_before, context)
        self._set_masks(mi_before, threshold)
        self.train(was_training)
        epochs = self.retrain_epochs if self.retrain_epochs is not None else max(1, context.epoch // 4)
        if epochs:
            context.fit(epochs)
        self.eval()
        mi_after = self.unit_mutual_information(x, y)
        self.train(was_training)
        layers = self.candidate_layers()
        context.log["mutual_information"] = {
            "estimator": self.estimator,
            "threshold": threshold,
            "val_accuracy_unmasked": val_unmasked,
            "val_accuracy_at_threshold": val_at_threshold,
            "retrain_epochs": epochs,
            "layers": layers,
            "mean_mi_before": [float(mi_before[l].mean()) for l in layers],
            "mean_mi_after": [float(mi_after[l][self.unit_mask(l).mask > 0].mean()) for l in layers],
            "units_kept": [int(self.unit_mask(l).mask.sum()) for l in layers],
        }

    def extra_repr(self) -> str:
        return (f"estimator={self.estimator}, bins={self.bins}, "
                f"binning={self.binning}, k={self.k}, "
                f"samples={self.samples}, tolerance={self.tolerance}, retrain_epochs={self.retrain_epochs}, "
                f"fill={self.fill}")


@register("mi", options=("estimator", "bins", "binning", "k", "samples", "tolerance",
                          "retrain_epochs", "fill"))
def build(spec: VariantSpec) -> nn.Module:
    """Options ``estimator`` (histogram | knn), ``bins`` (30), ``binning`` (quantile | uniform),
    ``k`` (3), ``samples`` (10000), ``fill`` (mean | zero),
    ``tolerance`` (1.0 points), ``retrain_epochs`` (a quarter of the epochs run); the input
    layer is a candidate with ``include_input``; ``p`` and ``mode`` have no effect."""
    retrain = spec.option("retrain_epochs", None, int)
    return MutualInformationDropout(spec, estimator=spec.option("estimator", "histogram", str),
                                    bins=spec.option("bins", 30, int),
                                    binning=spec.option("binning", "quantile", str), k=spec.option("k", 3, int),
                                    samples=spec.option("samples", 10_000, int),
                                    tolerance=spec.option("tolerance", 1.0, float),
                                    retrain_epochs=retrain, fill=spec.option("fill", "mean", str), seed=spec.seed)

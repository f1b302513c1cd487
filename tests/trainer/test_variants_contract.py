"""One contract over every registered dropout variant, on the MLP and on the CNN: what the
harness relies on.

Shape kept, deterministic inference, gradients reaching the first and last layers, the same
output for the same seed, the optional hooks well-formed (a regularisation loss is a
non-negative differentiable scalar; keep masks have one entry per candidate layer in [0, 1]).
"""

from __future__ import annotations

import pytest
import torch

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec

SIZES = [784, 24, 16, 10]
BATCH = 32


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, SIZES[0], generator=gen)
    x[x < 0.5] = 0.0  # sparse, image-like inputs in [0, 1]
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=gen)
    return x, y


def _build(name: str, include_input: bool, seed: int = 0, model: str = "mlp") -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = VariantSpec(list(SIZES), include_input=include_input, seed=seed, model=model)
    return registry.get(name)(spec)


def _train_forward(model: torch.nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """One training forward pass as the harness does it (``before_step`` first, when present)."""
    torch.manual_seed(seed)
    model.train()
    before = getattr(model, "before_step", None)
    if callable(before):
        before(x, 0)
    return model(x)


def test_registry_lists_the_issue_variants():
    expected = {"none", "dropout", "gaussian", "alpha", "dropconnect", "dropneuron", "mi",
                "dropalan-alpha", "dropalan-beta", "dropalan-beta-scaled", "sparsevd"}
    assert expected <= set(registry.names())


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("include_input", [False, True], ids=["hidden", "input"])
@pytest.mark.parametrize("name", registry.names())
def test_variant_contract(name: str, include_input: bool, network: str):
    x, y = _batch()
    model = _build(name, include_input, model=network)

    # Shape kept, in training and in inference.
    logits = _train_forward(model, x, seed=1)
    assert logits.shape == (BATCH, SIZES[-1])
    assert torch.isfinite(logits).all()

    # Gradients flow to the first and the last layer, finite everywhere.
    loss = torch.nn.functional.cross_entropy(logits, y)
    regularizer = getattr(model, "regularization_loss", None)
    if callable(regularizer):
        reg = regularizer()
        assert isinstance(reg, torch.Tensor) and reg.dim() == 0
        assert torch.isfinite(reg.detach()) and float(reg.detach()) >= 0.0
        loss = loss + reg
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    for linear in (model.network.connections[0], model.network.connections[-1]):
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in linear.parameters()), \
            f"{name}: no gradient reached {linear}"

    # Inference is deterministic (noise only while training).
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (BATCH, SIZES[-1])
    torch.testing.assert_close(first, second, rtol=0, atol=0)

    # Same seed, same model and same training-mode output.
    again = _build(name, include_input, model=network)
    torch.testing.assert_close(_train_forward(_build(name, include_input, model=network), x, seed=1),
                               _train_forward(again, x, seed=1), rtol=0, atol=0)

    # Keep masks: one per candidate layer (input and hidden), fractions in [0, 1].
    masks_fn = getattr(model, "unit_keep_masks", None)
    if callable(masks_fn):
        masks = masks_fn()
        assert [int(m.numel()) for m in masks] == model.network.units
        assert model.network.units == (SIZES[:-1] if network == "mlp" else [784, 6, 16, 120, 84])
        assert all(float(m.min()) >= 0.0 and float(m.max()) <= 1.0 for m in masks)

    counts_fn = getattr(model, "parameter_counts", None)
    if callable(counts_fn):
        total, remaining = counts_fn()
        assert 0 <= remaining <= total


# Not the deterministic methods: no dropout at all, MI (masks set after training), DropNeuron
# (a regulariser), Ising-Dropout (masks chosen by the solver; its own tests cover them) and the
# pruning baselines (one fixed mask in training and inference).
_DETERMINISTIC = ("none", "mi", "dropneuron", "ising", "prune-magnitude", "prune-taylor")


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("name", [n for n in registry.names() if n not in _DETERMINISTIC])
def test_training_mode_differs_from_inference(name: str, network: str):
    """Each random method does something while training that inference does not."""
    x, _ = _batch()
    model = _build(name, include_input=True, model=network)
    with torch.no_grad():
        trained = _train_forward(model, x, seed=1)
        model.eval()
        inferred = model(x)
    assert not torch.equal(trained, inferred)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("name", ["dropout", "gaussian", "alpha", "dropconnect", "dropalan-beta-scaled"])
def test_noise_variants_are_the_plain_network_at_inference(name: str, network: str):
    x, _ = _batch()
    model = _build(name, include_input=True, model=network).eval()
    with torch.no_grad():
        h = x
        net = model.network
        for layer, linear in enumerate(net.connections):
            h = linear(net.route(layer, h))
            if layer < len(net.activations):
                h = net.activations[layer](h)
        torch.testing.assert_close(model(x), h)


@pytest.mark.parametrize("name", ["dropout", "gaussian", "alpha"])
def test_random_gates_act_on_whole_channels_of_the_cnn(name: str):
    """On (batch, C, H, W) a unit is a channel: every position of a channel shares its factor."""
    model = _build(name, include_input=False, model="cnn")
    gate = model.network.gates[1]
    h = torch.rand(64, 6, 7, 7) + 1.0
    torch.manual_seed(3)
    out = gate.train()(h)
    ratio = (out / h).flatten(2) if name != "alpha" else out.flatten(2)
    spread = ratio.max(2).values - ratio.min(2).values
    if name == "alpha":  # dropped channels sit at one value; kept ones keep their spread
        dropped = (out.flatten(2).std(2) < 1e-6)
        assert dropped.any() and not dropped.all()
    else:
        assert float(spread.max()) < 1e-5
        assert float(ratio[:, :, 0].std()) > 0.1  # but channels (and samples) differ

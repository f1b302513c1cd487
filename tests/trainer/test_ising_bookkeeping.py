"""Ising-Dropout's masks and the paper's W* bookkeeping."""

from __future__ import annotations

import numpy as np
import torch

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec

from tests.trainer.ising_steps import train_step


def make(include_input: bool = True, mode: str = "train", **options):
    torch.manual_seed(0)
    options.setdefault("solve_every", 1000)
    spec = VariantSpec(sizes=[12, 8, 6, 3], include_input=include_input, mode=mode, options=options)
    return registry.get("ising")(spec)


def one_step(model, x, y, step: int = 1) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for s in range(step, step + 3):   # several steps so Adam's momentum is non-zero
        train_step(model, opt, x, y, s)


def test_dropped_units_keep_their_weights_and_kept_ones_train() -> None:
    model = make()
    x, y = torch.rand(16, 12), torch.randint(0, 3, (16,))
    # warm Adam up with all units kept, then drop some
    opt_state_model = model
    one_step(opt_state_model, x, y)
    state = np.ones(model.layout.num_variables, dtype=np.uint8)
    dropped_in, dropped_h1, dropped_h2 = 3, 12 + 2, 12 + 8 + 4
    state[[dropped_in, dropped_h1, dropped_h2]] = 0
    model.set_state(state)
    before = [(lin.weight.detach().clone(), lin.bias.detach().clone()) for lin in model.network.connections]
    one_step(model, x, y)
    w0, w1, w2 = (lin.weight.detach() for lin in model.network.connections)
    b0, b1 = model.network.connections[0].bias.detach(), model.network.connections[1].bias.detach()
    # outgoing weights of the dropped input pixel 3
    assert torch.equal(w0[:, 3], before[0][0][:, 3])
    # hidden unit 2 of h1: incoming row, bias and outgoing column
    assert torch.equal(w0[2], before[0][0][2]) and torch.equal(b0[2], before[0][1][2])
    assert torch.equal(w1[:, 2], before[1][0][:, 2])
    # hidden unit 4 of h2
    assert torch.equal(w1[4], before[1][0][4]) and torch.equal(b1[4], before[1][1][4])
    assert torch.equal(w2[:, 4], before[2][0][:, 4])
    # kept connections moved
    assert not torch.equal(w0[0, 0], before[0][0][0, 0])
    assert not torch.equal(w1[0, 0], before[1][0][0, 0])
    assert not torch.equal(w2[0, 0], before[2][0][0, 0])


def test_masks_apply_in_eval_only_in_train_plus_infer_mode() -> None:
    x = torch.rand(4, 12)
    for mode, changes in (("train", False), ("train+infer", True)):
        model = make(mode=mode)
        model.eval()
        full = model(x)
        state = np.ones(model.layout.num_variables, dtype=np.uint8)
        state[12:16] = 0
        model.set_state(state)
        assert (not torch.allclose(model(x), full)) == changes


def test_keep_masks_cover_every_candidate_layer() -> None:
    model = make(include_input=False)
    state = np.ones(model.layout.num_variables, dtype=np.uint8)
    state[0] = 0
    model.set_state(state)
    masks = model.unit_keep_masks()
    assert [m.numel() for m in masks] == [12, 8, 6]
    assert float(masks[0].min()) == 1.0 and float(masks[1][0]) == 0.0


def test_solving_sets_masks_from_the_engine() -> None:
    model = make(solve_every=1)
    x = torch.rand(16, 12)
    model.before_step(x, 1)
    assert model.num_solves == 1
    assert set(np.unique(model.state)) <= {0, 1}
    timings = model.timing_breakdown()
    assert timings["solve"] > 0 and timings["ising_build"] > 0
    parts = torch.cat(list(model.candidate_masks().values()))
    assert np.array_equal(parts.numpy().astype(np.uint8), model.state)


def test_kept_weights_follow_the_optimizer_bit_for_bit() -> None:
    """Restoring dropped weights must not perturb kept ones: compare with a twin that skips it."""
    x, y = torch.rand(16, 12), torch.randint(0, 3, (16,))
    state = np.ones(12 + 8 + 6, dtype=np.uint8)
    state[[0, 5, 12 + 1, 12 + 8 + 2]] = 0
    runs = []
    for bookkeeping in (True, False):
        model = make()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for step in range(6):
            if step == 3:
                model.set_state(state)   # drop after Adam has momentum
            train_step(model, opt, x, y, step + 1, after=bookkeeping)
        runs.append(model)
    model, twin = runs
    for index, (lin, lin_twin) in enumerate(zip(model.network.connections, twin.network.connections)):
        w_mask, _ = model._restore[index]
        kept = w_mask < 0.5
        assert torch.equal(lin.weight[kept], lin_twin.weight[kept])
        assert not torch.equal(lin.weight[~kept], lin_twin.weight[~kept])   # the twin's drifted


def test_trainer_flushes_denormals(mnist_small) -> None:  # type: ignore[no-untyped-def]
    """The momenta of long-dropped units decay below 1e-38; the trainer makes such numbers zero
    (arithmetic on denormals is many times slower) on the training thread."""
    from trainer.harness import Trainer

    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    assert float(tiny * 1e-10) != 0.0  # a denormal result survives by default
    spec = VariantSpec(sizes=[784, 16, 10], include_input=False, mode="train", seed=0, options={})
    Trainer(registry.get("none")(spec), mnist_small, batch_size=32, lr=0.01, seed=0)
    assert float(tiny * 1e-10) == 0.0


def test_dropped_channels_of_the_cnn_keep_their_kernels_and_fc_blocks() -> None:
    """On the CNN a dropped channel owns its kernel and bias (rows of the conv producing it) and
    its slice of the next conv, or across the flatten its 25 columns of fc 1."""
    torch.manual_seed(0)
    model = registry.get("ising")(VariantSpec([784, 10], model="cnn", options={"solve_every": 1000}))
    x, y = torch.rand(16, 784), torch.randint(0, 10, (16,))
    one_step(model, x, y)
    state = np.ones(model.layout.num_variables, dtype=np.uint8)
    state[[1, 6 + 3]] = 0  # conv-1 channel 1, conv-2 channel 3
    model.set_state(state)
    conv1, conv2, fc1 = model.network.connections[:3]
    before = [c.weight.detach().clone() for c in (conv1, conv2, fc1)] + [conv1.bias.detach().clone(),
                                                                         conv2.bias.detach().clone()]
    one_step(model, x, y)
    assert torch.equal(conv1.weight[1], before[0][1]) and torch.equal(conv1.bias[1], before[3][1])
    assert torch.equal(conv2.weight[:, 1], before[1][:, 1])                              # channel 1 out
    assert torch.equal(conv2.weight[3], before[1][3]) and torch.equal(conv2.bias[3], before[4][3])
    assert torch.equal(fc1.weight[:, 75:100], before[2][:, 75:100])                     # channel 3 out
    assert not torch.equal(conv1.weight[0], before[0][0])
    assert not torch.equal(conv2.weight[0, 0], before[1][0, 0])
    assert not torch.equal(fc1.weight[:, :75], before[2][:, :75])
    x_eval = torch.rand(4, 784)
    with torch.no_grad():
        outputs = model.network.layer_outputs(x_eval)
    assert float(outputs[1][:, 1].abs().max()) == 0.0 and float(outputs[2][:, 3].abs().max()) == 0.0


def test_rescaled_masks_scale_kept_units_by_n_over_kept_in_training_and_only_with_train_infer() -> None:
    from trainer.dropout.ising import UnitMask

    h = torch.ones(2, 4)
    for apply_in_eval in (False, True):
        gate = UnitMask(4, apply_in_eval, rescale=True)
        gate.mask.copy_(torch.tensor([1.0, 0.0, 1.0, 0.0]))
        torch.testing.assert_close(gate(h), torch.tensor([[2.0, 0, 2, 0]] * 2))
        gate.eval()
        expected = torch.tensor([[2.0, 0, 2, 0]] * 2) if apply_in_eval else h
        torch.testing.assert_close(gate(h), expected)
        assert gate.inference_scale == (2.0 if apply_in_eval else 1.0)
    plain = UnitMask(4, True)
    plain.mask.copy_(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(plain(h), torch.tensor([[1.0, 0, 1, 0]] * 2))

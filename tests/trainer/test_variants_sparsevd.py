"""Sparse Variational Dropout: the KL approximation, the local reparameterisation, pruning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from trainer.dropout import registry
from trainer.dropout.base import VariantSpec
from trainer.dropout.sparsevd import (LinearSVDO, SparseVD, kl_weight, log_alpha_of,
                                      neg_kl_approximation, svdo_linear)


def neg_kl_numerical(log_alpha: float) -> float:
    """``-KL(q || p)`` for the log-uniform prior up to its constant (Molchanov et al., eq. 14):
    ``0.5 log alpha - E_{eps ~ N(1, alpha)} log|eps|``, by adaptive quadrature."""
    sd = math.exp(0.5 * log_alpha)

    def integrand(e: float) -> float:
        return norm.pdf(e, 1.0, sd) * math.log(abs(e))

    lo, hi = 1.0 - 12 * sd, 1.0 + 12 * sd
    if lo < 0.0:  # split at the integrable log singularity
        expectation = (integrate.quad(integrand, lo, 0.0, limit=200)[0]
                       + integrate.quad(integrand, 0.0, hi, limit=200)[0])
    else:
        expectation = integrate.quad(integrand, lo, hi, limit=200)[0]
    return 0.5 * log_alpha - expectation


LOG_ALPHAS = [-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]


def test_kl_approximation_matches_numerical_integration_up_to_the_constant():
    approx = neg_kl_approximation(torch.tensor(LOG_ALPHAS, dtype=torch.float64)).numpy()
    exact = np.array([neg_kl_numerical(a) for a in LOG_ALPHAS])
    # Differences between log alpha values are free of the unknown constant.
    np.testing.assert_allclose(approx - approx[4], exact - exact[4], atol=0.015)
    # The constant is -E log|z|, z ~ N(0, 1) = -(gamma + ln 2) / 2: then -KL -> 0 as alpha -> inf.
    constant = -(np.euler_gamma + math.log(2.0)) / 2.0
    np.testing.assert_allclose(approx, exact + constant, atol=0.015)


def test_kl_is_positive_and_decreasing_in_log_alpha():
    la = torch.linspace(-8, 8, 161, dtype=torch.float64)
    kl = -neg_kl_approximation(la)
    assert bool((kl > 0).all())
    assert bool((kl[1:] < kl[:-1]).all())


def test_log_alpha_is_clipped():
    theta = torch.tensor([1e-6, 1.0, 100.0])
    log_sigma2 = torch.tensor([5.0, -10.0, -30.0])
    torch.testing.assert_close(log_alpha_of(theta, log_sigma2), torch.tensor([8.0, -8.0, -8.0]))


def test_local_reparameterisation_has_the_right_mean_and_variance():
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    log_sigma2 = torch.log(torch.rand(3, 5, generator=gen, dtype=torch.float64))
    bias = torch.randn(3, generator=gen, dtype=torch.float64)
    x = torch.randn(1, 5, generator=gen, dtype=torch.float64).expand(200_000, 5)
    out = svdo_linear(x, theta, log_sigma2, bias, training=True, generator=gen)
    mean = x[0] @ theta.T + bias
    var = (x[0] ** 2) @ torch.exp(log_sigma2).T
    torch.testing.assert_close(out.mean(0), mean, atol=5 * float(var.max().sqrt()) / math.sqrt(200_000), rtol=0)
    torch.testing.assert_close(out.var(0), var + 1e-8, rtol=0.02, atol=0)


def test_inference_zeroes_weights_with_log_alpha_at_least_three():
    layer = LinearSVDO(4, 2)
    with torch.no_grad():
        layer.theta.copy_(torch.ones(2, 4))
        layer.log_sigma2.copy_(torch.tensor([[2.9, 3.0, 3.1, -10.0], [8.0, -8.0, 0.0, 2.0]]))
        layer.bias.zero_()
    layer.eval()
    x = torch.eye(4)
    # log theta^2 = 0, so log alpha = log sigma^2; kept where < 3.
    torch.testing.assert_close(layer(x).T, torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]))
    assert int(torch.count_nonzero(layer.weight)) == 5


def test_initial_state_and_warmup_schedule():
    layer = LinearSVDO(10, 3)
    assert float(layer.log_sigma2.detach().max()) == -10.0
    assert [kl_weight(e, 5, 20) for e in (0, 4, 5, 10, 20, 30)] == pytest.approx([0, 0, 0, 1 / 3, 1, 1])
    assert kl_weight(0, 0, 0) == 1.0
    with pytest.raises(ValueError):
        LinearSVDO(10, 3, threshold=9.0)


def test_regulariser_is_the_warmed_up_kl_per_example_and_compression_is_counted():
    net = registry.get("sparsevd")(VariantSpec([20, 8, 4], options={"num_train": "100",
                                                                    "kl_warmup_start": "0",
                                                                    "kl_warmup_end": "2"}))
    assert isinstance(net, SparseVD)
    assert net.kl_scale == 0.0
    net.kl_scale = 0.5
    expected = 0.5 * sum(float(-neg_kl_approximation(l.log_alpha).sum().detach()) for l in net.network.connections) / 100
    assert float(net.regularization_loss().detach()) == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        for layer in net.network.connections:
            layer.theta.fill_(0.5)
    assert net.parameter_counts() == (20 * 8 + 8 + 8 * 4 + 4,) * 2
    with torch.no_grad():  # make every weight into hidden unit 0 noise: that unit is gone
        net.network.connections[0].log_sigma2[0].fill_(8.0)
    total, remaining = net.parameter_counts()
    assert total - remaining == 20 + 4 + 1  # its incoming and outgoing weights and its bias
    assert net.unit_keep_masks()[1].tolist() == [0.0] + [1.0] * 7

"""The paper's parameter count (eq. 6) and its 'Total' column."""

from __future__ import annotations

import pytest
import torch

from trainer.data import DataSplits
from trainer.dropout import registry
from trainer.dropout.base import VariantSpec, is_deterministic, paper_parameter_counts, paper_parameter_terms
from trainer.harness import train
from trainer.models import MLP
from trainer.pruning import structured_counts


def eq6(sizes: list[int]) -> int:
    """Eq. 6 written out term by term, independently of the implementation."""
    x, hidden, y = sizes[0], sizes[1:-1], sizes[-1]
    p = x * hidden[0]
    for i in range(len(hidden) - 1):
        p += hidden[i] * (hidden[i + 1] + 1)
    return p + hidden[-1] * (y + 1) + y


@pytest.mark.parametrize(("sizes", "expected"), [
    ([784, 100, 100, 10], 89_610),
    ([784, 100, 50, 50, 10], 86_610),
    ([784, 100, 50, 50, 25, 10], 87_635),
])
def test_eq6_totals_for_the_papers_networks(sizes: list[int], expected: int) -> None:
    total, remaining = paper_parameter_counts(sizes)
    assert total == expected == eq6(sizes)
    assert remaining == total
    assert sum(paper_parameter_terms(sizes)) + sizes[-1] == total


@pytest.mark.parametrize(("drops", "paper_total"), [
    ((38.60, 32.18, 25.15), 37.71),   # Ising-Dropout incl. input
    ((0.0, 38.62, 42.43), 4.88),      # Ising-Dropout, hidden only
    ((50.0, 50.0, 50.0), 50.00),      # dropout p=0.5 incl. input
])
def test_removed_share_matches_the_papers_total_column(drops: tuple[float, ...], paper_total: float) -> None:
    total, remaining = paper_parameter_counts([784, 100, 100, 10], [1 - d / 100 for d in drops])
    assert 100 * (1 - remaining / total) == pytest.approx(paper_total, abs=0.02)


def test_keep_fractions_must_cover_every_candidate_layer() -> None:
    with pytest.raises(ValueError, match="keep fractions"):
        paper_parameter_counts([784, 100, 10], [1.0, 1.0, 1.0])


def test_exact_counts_remove_incoming_and_outgoing_weights() -> None:
    sizes = [4, 3, 2]
    masks = [torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])]
    counts = structured_counts(MLP(sizes), masks)
    assert counts["params_full"] == 4 * 3 + 3 + 3 * 2 + 2
    assert counts["params_pruned"] == 2 * 2 + 2 + 2 * 2 + 2


def test_exact_counts_refuse_keep_fractions() -> None:
    """A random method's 0.5 keep rate prunes nothing; it must not be read as 'all removed'."""
    with pytest.raises(ValueError, match="0/1 keep masks"):
        structured_counts(MLP([4, 3, 2]), [torch.full((4,), 0.5), torch.ones(3)])
    assert is_deterministic([torch.tensor([0.0, 1.0]), torch.ones(3)])
    assert not is_deterministic([torch.tensor([0.0, 0.97])])


def _tiny_data() -> DataSplits:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 20, generator=gen)
    y = (x[:, 0] > 0.5).long()
    return DataSplits("tiny", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:])


@pytest.mark.parametrize(("name", "include_input", "basis"), [
    ("dropout", True, "eq6-expected"),
    ("dropout", False, "eq6-expected"),
    ("alpha", True, "eq6-expected"),
    ("dropalan-beta", False, "eq6-expected"),
    ("none", False, "pruned"),
    ("gaussian", True, "pruned"),
    ("ising", True, "pruned"),
    ("dropneuron", False, "pruned"),
    ("sparsevd", False, "pruned"),
])
def test_exact_fields_say_their_basis(name: str, include_input: bool, basis: str) -> None:
    torch.manual_seed(0)
    model = registry.get(name)(VariantSpec([20, 8, 6, 2], include_input=include_input, mode="train+infer"))
    result = train(model, _tiny_data(), epochs=1, lr=0.01, seed=0)
    assert result.params_exact_basis == basis
    assert 0.0 <= result.params_removed_pct_exact < 100.0
    if basis == "eq6-expected":  # random methods: the paper's count with the expected drop rates
        assert result.params_removed_pct_exact == pytest.approx(result.params_removed_pct)
        assert result.params_total_exact == result.params_total


def test_dropout_with_input_reports_half_the_parameters_not_all() -> None:
    torch.manual_seed(0)
    model = registry.get("dropout")(VariantSpec([20, 8, 6, 2], include_input=True))
    result = train(model, _tiny_data(), epochs=1, lr=0.01, seed=0)
    removed = 100 * (1 - paper_parameter_counts([20, 8, 6, 2], [0.5, 0.5, 0.5])[1] / result.params_total)
    assert result.params_removed_pct_exact == pytest.approx(removed)
    assert 45.0 < result.params_removed_pct_exact < 50.0

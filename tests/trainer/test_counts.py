"""The paper's parameter count (eq. 6) and its 'Total' column."""

from __future__ import annotations

import pytest
import torch

from trainer.dropout.base import exact_parameter_counts, paper_parameter_counts, paper_parameter_terms


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
    total, remaining = exact_parameter_counts(sizes, masks)
    assert total == 4 * 3 + 3 + 3 * 2 + 2
    assert remaining == 2 * 2 + 2 + 2 * 2 + 2

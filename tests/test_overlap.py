from __future__ import annotations

import json

import pytest
import torch

from interference.io.errors import InterferenceError
from interference.measures import overlap
from interference.measures.overlap import cosine_matrix, linear_cka, max_cosine, overlap_table, topk_mean_cosine


def _brute_cosines(q, k):
    return torch.tensor([[float(a @ b / (a.norm() * b.norm())) for b in k] for a in q], dtype=torch.float64)


def test_cosine_matrix_matches_definition():
    torch.manual_seed(0)
    q, k = torch.randn(6, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(cosine_matrix(q, k), _brute_cosines(q, k))
    zero = cosine_matrix(torch.zeros(1, 5), k.float())
    assert torch.equal(zero, torch.zeros(1, 4))


def test_max_and_topk_against_brute_force():
    torch.manual_seed(1)
    q, k = torch.randn(9, 8, dtype=torch.float64), torch.randn(7, 8, dtype=torch.float64)
    cos = _brute_cosines(q, k)
    torch.testing.assert_close(max_cosine(q, k), cos.max(dim=1).values)
    sorted_cos = cos.sort(dim=1, descending=True).values
    for k_top in (1, 3, 7):
        torch.testing.assert_close(topk_mean_cosine(q, k, k_top), sorted_cos[:, :k_top].mean(dim=1))
    torch.testing.assert_close(topk_mean_cosine(q, k, 7), cos.mean(dim=1))
    # a query equal to one key (up to scale) has max cosine 1 with it
    assert max_cosine(3 * k[2:3], k).item() == pytest.approx(1.0)


def test_chunking_gives_the_same_answer(monkeypatch):
    torch.manual_seed(2)
    q, k = torch.randn(3, 50, 16), torch.randn(3, 40, 16)
    whole = overlap_table(q, k, k=5)
    monkeypatch.setattr(overlap, "CHUNK_ELEMENTS", 7)  # forces chunks of a single query row
    chunked = overlap_table(q, k, k=5)
    torch.testing.assert_close(chunked.max_cosine, whole.max_cosine)
    torch.testing.assert_close(chunked.topk_mean_cosine, whole.topk_mean_cosine)
    assert torch.equal(chunked.nearest, whole.nearest)


def test_leading_layer_dimension_is_per_layer():
    torch.manual_seed(3)
    q, k = torch.randn(4, 10, 8), torch.randn(4, 6, 8)
    table = overlap_table(q, k, k=2)
    assert table.max_cosine.shape == (4, 10) and table.nearest.shape == (4, 10)
    for layer in range(4):
        torch.testing.assert_close(table.max_cosine[layer], max_cosine(q[layer], k[layer]))
        torch.testing.assert_close(table.topk_mean_cosine[layer], topk_mean_cosine(q[layer], k[layer], 2))
        cos = cosine_matrix(q[layer], k[layer])
        picked = cos.gather(1, table.nearest[layer][:, None])[:, 0]
        torch.testing.assert_close(picked, table.max_cosine[layer])
    record = json.loads(json.dumps(table.to_dict()))
    assert record["k"] == 2 and len(record["max_cosine"]) == 4 and len(record["nearest"][0]) == 10


def test_overlap_errors_are_named():
    with pytest.raises(InterferenceError, match="k <= number of keys"):
        topk_mean_cosine(torch.randn(3, 4), torch.randn(2, 4), 3)
    with pytest.raises(InterferenceError, match="differ in width"):
        max_cosine(torch.randn(3, 4), torch.randn(2, 5))
    with pytest.raises(InterferenceError, match="at least one key"):
        max_cosine(torch.randn(3, 4), torch.randn(0, 4))


def _cka_by_centring_matrix(x, y):
    """HSIC form: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)) with K = XXᵀ, L = YYᵀ, H = I - 11ᵀ/n."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    kc, lc = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((kc * lc).sum() / torch.sqrt((kc * kc).sum() * (lc * lc).sum()))


@pytest.mark.parametrize("shape", [(40, 6, 9), (5, 12, 7)])  # n > widths (feature form) and n < widths (Gram form)
def test_linear_cka_matches_hsic_form(shape):
    n, p, q = shape
    torch.manual_seed(4)
    x = torch.randn(n, p)
    y = x[:, :3] @ torch.randn(3, q) + 0.5 * torch.randn(n, q)
    assert linear_cka(x, y) == pytest.approx(_cka_by_centring_matrix(x, y), rel=1e-9)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert 0 < linear_cka(x, y) < 1


def test_linear_cka_invariances():
    torch.manual_seed(5)
    x = torch.randn(30, 8, dtype=torch.float64)
    orthogonal, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x @ orthogonal + 5.0) == pytest.approx(1.0, abs=1e-12)
    # not invariant to an anisotropic rescaling, and low for an unrelated representation
    stretched = x * torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 0.1], dtype=torch.float64)
    assert linear_cka(x, stretched) < 0.95
    unrelated = torch.randn(30, 8, dtype=torch.float64)
    assert linear_cka(x, unrelated) < linear_cka(x, stretched)


def test_linear_cka_errors():
    with pytest.raises(InterferenceError, match="same items"):
        linear_cka(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(InterferenceError, match="constant"):
        linear_cka(torch.ones(5, 3), torch.randn(5, 3))
    with pytest.raises(InterferenceError, match="two matrices"):
        linear_cka(torch.randn(2, 5, 3), torch.randn(2, 5, 3))


def test_split_by_overlap_takes_the_top_and_bottom_n():
    from interference.measures.overlap import split_by_overlap

    scores = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2]
    assert split_by_overlap(scores, 2) == ([1, 4], [5, 2])  # each from highest to lowest
    with pytest.raises(InterferenceError, match="two disjoint sets of 4 need 8 candidates, got 6"):
        split_by_overlap(scores, 4)


def test_a_relation_matched_split_gives_both_sets_the_same_relation_mix():
    from collections import Counter

    from interference.measures.overlap import matched_quotas, split_by_overlap

    # P36 overlaps more than P17 throughout: an unmatched split is all P36 against all P17
    groups = ["P36"] * 6 + ["P17"] * 6 + ["P495"] * 3
    scores = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65] + [0.4, 0.35, 0.3, 0.25, 0.2, 0.15] + [0.6, 0.5, 0.1]
    high, low = split_by_overlap(scores, 4)
    assert {groups[i] for i in high} == {"P36"} and {groups[i] for i in low} == {"P17", "P495"}
    quotas = matched_quotas(groups, 4)
    assert quotas == {"P36": 1, "P17": 2, "P495": 1}  # shares 1.6, 1.6, 0.8; a tie goes to the first by name
    high, low = split_by_overlap(scores, 4, groups)
    assert Counter(groups[i] for i in high) == Counter(groups[i] for i in low) == Counter(quotas)
    assert not set(high) & set(low)
    assert sorted(high) == [0, 6, 7, 12] and sorted(low) == [5, 10, 11, 14]  # the extremes within each relation
    assert [scores[i] for i in high] == sorted((scores[i] for i in high), reverse=True)
    with pytest.raises(InterferenceError, match="need at least 16 candidates that pair within their relations; there "
                                                "are 14 \\(P17 6, P36 6, P495 3\\)"):
        matched_quotas(groups, 8)
    with pytest.raises(InterferenceError, match="3 groups for 15 candidates"):
        split_by_overlap(scores, 4, groups[:3])

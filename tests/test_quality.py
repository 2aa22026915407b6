"""The quality report (issue 4): recall against exact search, and against
known relevant rows."""

from __future__ import annotations

import numpy as np
import pytest

import simkernel as sk


def test_recall_at_k_is_the_share_of_the_exact_top_k_found():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert sk.recall_at_k(found, exact) == pytest.approx((2 / 4 + 1) / 2)
    assert sk.recall_at_k(exact[0], exact[0]) == 1.0
    with pytest.raises(ValueError, match="one row per query"):
        sk.recall_at_k(found[:1], exact)


def test_hit_rate_and_ndcg_with_one_relevant_row_per_query():
    found = np.array([[7, 3, 5], [1, 2, 4], [9, 9, 9]])
    relevant = np.array([7, 4, 0])
    assert sk.hit_rate_at_k(found, relevant) == pytest.approx(2 / 3)
    assert sk.ndcg_at_k(found, relevant) == pytest.approx((1 + 1 / np.log2(4)) / 3)


def test_report_covers_every_storage_and_holds_exact_search_to_itself(backend):
    rng = np.random.default_rng(4)
    corpus = rng.standard_normal((2000, 64)).astype(np.float32)
    queries = corpus[:50] + 0.3 * rng.standard_normal((50, 64)).astype(np.float32)
    report = {row.name: row for row in sk.quantization_report(
        corpus, queries, k=10, relevant=np.arange(50))}
    assert list(report) == list(sk.quality.CONFIGURATIONS)
    assert report["float32"].recall == 1.0 and report["float16"].recall >= 0.99
    assert report["bfloat16"].recall >= 0.95
    assert report["bfloat16"].nbytes == report["float16"].nbytes
    assert report["int8"].recall >= 0.9
    assert report["binary + float32 rescore"].recall > report["binary"].recall
    assert report["float32"].hit_rate == 1.0 and report["float32"].ndcg == 1.0
    assert report["binary"].nbytes < report["int8"].nbytes < report["float32"].nbytes
    # Two-stage rows give the recall at every depth; with float32 rescoring,
    # the one at the default depth (4 k) is the recall of the search itself.
    assert report["binary"].recall_by_depth is None
    by_depth = report["binary + float32 rescore"].recall_by_depth
    assert len(by_depth) == 160 and (np.diff(by_depth) >= 0).all()
    assert by_depth[39] == pytest.approx(report["binary + float32 rescore"].recall)
    l2 = sk.quantization_report(corpus, queries, metric="l2")
    assert [row.name for row in l2] == ["float32", "float16", "bfloat16", "int8", "int8, int8 queries"]
    assert l2[0].hit_rate is None

"""Shift of the top-1 query-to-corpus similarity distribution (a proxy for queries the corpus cannot answer).

Input is one number per query: the similarity of its best hit, as the tap records it. Two-sample
Kolmogorov-Smirnov test between the reference and current windows; by default one-sided, alternative "current
similarities are lower" (``alternative="less"`` in the sense of the current distribution being stochastically
smaller), since falling similarity is the harmful direction. Top-1 similarities are not comparable across
models, so only compare windows embedded by the same model.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import torch
from scipy.stats import ks_2samp

from . import permutation
from ._torch import normalise, topk_cosine
from ._validate import as_matrix, as_vector, check_alpha, check_int, frozen, require_fitted
from .errors import MonitorInputError
from .result import DriftResult

Alternative = Literal["lower", "two-sided"]


def top1_similarity(queries: Any, corpus: Any, corpus_ids: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each query's best corpus hit and that hit's id (its row index if no ids are given).

    A convenience for tests and offline analysis; in production the tap records these from Milvus.
    """
    c = as_matrix(corpus, "corpus", min_rows=1)
    q = as_matrix(queries, "queries", min_rows=1, dim=c.shape[1])
    if corpus_ids is not None and len(np.asarray(corpus_ids)) != len(c):
        raise MonitorInputError(
            f"corpus_ids: {len(np.asarray(corpus_ids))} ids for {len(c)} corpus rows; pass one id per corpus row"
        )
    sims, idx = topk_cosine(normalise(q), normalise(c), 1)
    ids = idx[:, 0] if corpus_ids is None else np.asarray(corpus_ids)[idx[:, 0]]
    return sims[:, 0].astype(np.float64), ids


class Top1SimilarityDetector:
    """KS test of the current window's top-1 similarities against the reference window's."""

    name = "top1_similarity"
    input_kind = "similarities"

    def __init__(self, *, alpha: float = 0.05, alternative: Alternative = "lower", min_rows: int = 10) -> None:
        self.alpha = check_alpha(alpha)
        if alternative not in ("lower", "two-sided"):
            raise MonitorInputError(f"alternative={alternative!r} must be 'lower' or 'two-sided'")
        self.alternative: Alternative = alternative
        self.min_rows = check_int(min_rows, "min_rows", 2)
        self._reference: np.ndarray | None = None

    def fit(self, reference: Any) -> Self:
        self._reference = as_vector(reference, "reference", min_rows=self.min_rows)
        return self

    def reference_size(self) -> int:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        return len(self._reference)

    def split_statistics(self, current: Any, assigned: torch.Tensor) -> np.ndarray:
        """The KS statistic (one-sided as ``alternative`` says) for every split ``assigned`` marks: the shared null of
        :class:`monitors.Page`. The pooled values are sorted once; each split's two empirical CDFs are cumulative
        counts of its labels in that order, read at the last row of each run of equal values."""
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        cur = as_vector(current, "current", min_rows=self.min_rows)
        pooled = np.concatenate([self._reference, cur])
        order = np.argsort(pooled, kind="stable")
        values = pooled[order]
        ends = torch.from_numpy(np.flatnonzero(np.append(values[1:] != values[:-1], True)))
        n_ref, n_cur = len(self._reference), len(cur)
        # n_ref * n_cur * (F_cur - F_ref) in exact integers (int32 while they fit): > 0 where the current side has
        # more mass below.
        dtype = torch.int32 if n_ref * (n_ref + n_cur) < 2**31 else torch.int64
        ties = len(ends) < len(values)
        step = torch.arange(1, len(values) + 1, dtype=dtype)[ends] * n_ref
        out = []
        for block in permutation.blocks(assigned[:, torch.from_numpy(order)]):
            ref_cdf = block.cumsum(dim=1, dtype=dtype)
            gap = step - (ref_cdf[:, ends] if ties else ref_cdf) * (n_ref + n_cur)
            out.append(gap.amax(dim=1) if self.alternative == "lower" else gap.abs().amax(dim=1))
        return torch.cat(out).double().div_(n_ref * n_cur).numpy()

    def check(self, current: Any) -> DriftResult:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        cur = as_vector(current, "current", min_rows=self.min_rows)
        # scipy's "greater" means the first sample's CDF lies above the second's, i.e. its values are smaller.
        res = ks_2samp(cur, self._reference, alternative="greater" if self.alternative == "lower" else "two-sided")
        p = float(res.pvalue)
        q_cur = np.quantile(cur, [0.05, 0.5, 0.95])
        q_ref = np.quantile(self._reference, [0.05, 0.5, 0.95])
        return DriftResult(
            method=self.name,
            statistic=float(res.statistic),
            p_value=p,
            threshold=None,
            drift=p <= self.alpha,
            alpha=self.alpha,
            n_reference=len(self._reference),
            n_current=len(cur),
            params=frozen({"test": "kolmogorov-smirnov", "alternative": self.alternative, "min_rows": self.min_rows}),
            details=frozen(
                {
                    "p5": float(q_cur[0]),
                    "p50": float(q_cur[1]),
                    "p95": float(q_cur[2]),
                    "reference_p5": float(q_ref[0]),
                    "reference_p50": float(q_ref[1]),
                    "reference_p95": float(q_ref[2]),
                    "median_shift": float(q_cur[1] - q_ref[1]),
                }
            ),
        )

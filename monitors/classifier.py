"""Domain-classifier two-sample test: can a classifier tell the current window from the reference?

A logistic regression is trained on a random half of the pooled rows (label 1 = current) and scores the other
half. The statistic is the held-out ROC AUC. Because the scoring rows were not used for training, under no drift
their scores are exchangeable between the two windows given the trained model, so the Mann-Whitney U
distribution (normal approximation with tie correction, one-sided "current scores higher") gives a valid
p-value. Scoring the training rows instead would make the AUC optimistic and the p-value wrong.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from ._torch import torch_threads
from ._validate import as_matrix, check_alpha, check_int, frozen, require_fitted
from .errors import MonitorInputError
from .result import DriftResult


def _train_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-regularised logistic regression by L-BFGS in torch (a few hundred ms at 10k x 384 on 2 cores)."""
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    # Class weights balance unequal window sizes so the classifier does not just learn the prior.
    pos = float(y.mean())
    weight = torch.where(y > 0.5, 0.5 / max(pos, 1e-12), 0.5 / max(1 - pos, 1e-12))
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = x @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=weight) + 0.5 * l2 * (w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]  # torch leaves LBFGS.step unannotated
    return w.detach(), b.detach()


class ClassifierDetector:
    """Held-out domain-classifier AUC with a closed-form Mann-Whitney p-value.

    ``l2`` is the ridge penalty on the weights (per row-averaged loss); ``test_size`` the share of pooled rows held
    out for scoring. Deterministic given ``seed``.
    """

    name = "classifier_auc"
    input_kind = "vectors"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        test_size: float = 0.5,
        l2: float = 1e-3,
        max_iter: int = 100,
        seed: int = 0,
        min_rows: int = 10,
        threads: int | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        if not 0.1 <= float(test_size) <= 0.9:
            raise MonitorInputError(f"test_size={test_size!r} must lie in [0.1, 0.9]; 0.5 is a good default")
        self.test_size = float(test_size)
        if not float(l2) >= 0:
            raise MonitorInputError(f"l2={l2!r} must be >= 0")
        self.l2 = float(l2)
        self.max_iter = check_int(max_iter, "max_iter", 1)
        self.seed = int(seed)
        self.min_rows = check_int(min_rows, "min_rows", 4)
        self.threads = threads
        self._reference: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed)

    def fit(self, reference: Any) -> Self:
        self._reference = as_matrix(reference, "reference", min_rows=self.min_rows)
        self._rng = np.random.default_rng(self.seed)
        return self

    def check(self, current: Any) -> DriftResult:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        ref = self._reference
        cur = as_matrix(current, "current", min_rows=self.min_rows, dim=ref.shape[1])
        x = np.concatenate([ref, cur])
        y = np.concatenate([np.zeros(len(ref), np.float32), np.ones(len(cur), np.float32)])
        # Stratified split: each window contributes the same share of rows to training and to scoring.
        test = np.zeros(len(x), dtype=bool)
        for idx in (np.arange(len(ref)), np.arange(len(ref), len(x))):
            n_test = min(max(2, int(round(len(idx) * self.test_size))), len(idx) - 2)
            test[self._rng.choice(idx, n_test, replace=False)] = True
        mean = x[~test].mean(axis=0)
        with torch_threads(self.threads, len(x)):
            xt = torch.from_numpy(x - mean)
            w, b = _train_logistic(xt[torch.from_numpy(~test)], torch.from_numpy(y[~test]), self.l2, self.max_iter)
            with torch.no_grad():
                scores = (xt[torch.from_numpy(test)] @ w + b).numpy()
        y_test = y[test]
        s_cur, s_ref = scores[y_test == 1], scores[y_test == 0]
        res = mannwhitneyu(s_cur, s_ref, alternative="greater", method="asymptotic")
        auc = float(res.statistic) / (len(s_cur) * len(s_ref))
        p = float(res.pvalue)
        return DriftResult(
            method=self.name,
            statistic=auc,
            p_value=p,
            threshold=None,
            drift=p <= self.alpha,
            alpha=self.alpha,
            n_reference=len(ref),
            n_current=len(cur),
            params=frozen(
                {
                    "test_size": self.test_size,
                    "l2": self.l2,
                    "max_iter": self.max_iter,
                    "seed": self.seed,
                    "min_rows": self.min_rows,
                    "model": "logistic regression (torch L-BFGS)",
                }
            ),
            details=frozen({"n_test_reference": len(s_ref), "n_test_current": len(s_cur)}),
        )

"""Evidently's embedding drift methods, called directly and wrapped in the detector contract.

This is the one module (with :mod:`monitors.report`, which imports from here) that imports Evidently. The methods
live in ``evidently.legacy.metrics.data_drift.embedding_drift_methods``; calling them directly takes well under a
second at 2,000 x 384, where ``Report([EmbeddingsDriftMetric])`` spends ~18 s, mostly drawing a t-SNE plot.

They compare a score with a *fixed threshold*; they are not tests, so ``p_value`` is ``None`` and ``alpha`` is
``None``. Their no-drift false-alarm rate depends on the sample size and dimension and is measured in the
benchmark, not promised. Defaults are Evidently's:

* ``model``: SGD logistic domain classifier, drift if held-out ROC AUC > 0.55.
* ``mmd``: RBF-kernel MMD^2, drift if > 0.015 (builds the full pooled kernel: O(n^2) memory).
* ``ratio``: share of dimensions whose Wasserstein distance > 0.1, drift if > 0.2.
* ``distance``: Euclidean distance between the window means, drift if > 0.2.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal, Self

import numpy as np

from ._validate import as_matrix, check_int, frozen, require_fitted
from .errors import MissingDependencyError, MonitorInputError
from .result import DriftResult

EvidentlyMethod = Literal["model", "mmd", "ratio", "distance"]
METHODS: tuple[str, ...] = ("model", "mmd", "ratio", "distance")
_INSTALL_HINT = "install it with: pip install 'evidently>=0.7.23,<0.8' 'pandas<3'"


def import_evidently(module: str = "evidently.legacy.metrics.data_drift.embedding_drift_methods") -> ModuleType:
    """Import an Evidently module or raise :class:`MissingDependencyError` with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"Evidently is not installed or too old ({exc}); {_INSTALL_HINT}") from exc


def to_frame(x: np.ndarray, prefix: str = "e") -> Any:
    """An embeddings matrix as the pandas DataFrame Evidently expects (one column per dimension)."""
    import pandas as pd

    return pd.DataFrame(x, columns=[f"{prefix}{i}" for i in range(x.shape[1])])


class EvidentlyDetector:
    """One of Evidently's fixed-threshold embedding drift methods, as a detector.

    ``options`` go to Evidently's factory (e.g. ``threshold=0.02``, ``pca_components=20``). Evidently's own
    ``bootstrap`` options are accepted but not recommended: the MMD one alarms on every no-drift window because its
    null distribution resamples the reference only (research/drift.md).
    """

    input_kind = "vectors"

    def __init__(self, method: EvidentlyMethod = "model", *, min_rows: int = 10, **options: Any) -> None:
        if method not in METHODS:
            raise MonitorInputError(
                f"method={method!r} is not an Evidently embedding drift method; use one of {', '.join(METHODS)}"
            )
        self.method: str = method
        self.name = f"evidently_{method}"
        self.min_rows = check_int(min_rows, "min_rows", 4)
        mod = import_evidently()
        try:
            self._impl = getattr(mod, method)(**options)
        except Exception as exc:
            raise MonitorInputError(f"options: Evidently's {method}() rejected {options!r} ({exc})") from exc
        self.options = dict(options)
        self.threshold = float(self._impl.threshold)
        self._reference: np.ndarray | None = None

    def fit(self, reference: Any) -> Self:
        self._reference = as_matrix(reference, "reference", min_rows=self.min_rows, dtype=np.float64)
        return self

    def check(self, current: Any) -> DriftResult:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        cur = as_matrix(current, "current", min_rows=self.min_rows, dim=self._reference.shape[1], dtype=np.float64)
        # Fresh DataFrames every call: ModelDriftMethod adds a "target" column to the frames it is given.
        score, drift, _ = self._impl(to_frame(cur), to_frame(self._reference))
        return DriftResult(
            method=self.name,
            statistic=float(score),
            p_value=None,
            threshold=self.threshold,
            drift=bool(drift),
            alpha=None,
            n_reference=len(self._reference),
            n_current=len(cur),
            params=frozen({"evidently_method": self.method, "threshold": self.threshold, **self.options}),
        )

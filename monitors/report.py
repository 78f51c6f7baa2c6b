"""Evidently's human-facing HTML report for a reference and a current window of embeddings.

Slow by design (~15 s at 2,000 x 384, mostly a t-SNE plot): use the detectors for monitoring and this for a
person looking at one alert. A CLI command saves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._validate import as_matrix
from .errors import MonitorInputError
from .evidently_methods import METHODS, import_evidently, to_frame


def build_report(
    reference: Any, current: Any, *, method: str | None = None, embeddings_name: str = "embedding", **options: Any
) -> Any:
    """Run Evidently's ``EmbeddingsDriftMetric`` report and return the Evidently ``Report`` object.

    ``method`` is one of ``model``, ``mmd``, ``ratio``, ``distance`` (``None``: Evidently's default, the domain
    classifier); ``options`` go to that method's factory.
    """
    ref = as_matrix(reference, "reference", min_rows=10, dtype=np.float64)
    cur = as_matrix(current, "current", min_rows=10, dim=ref.shape[1], dtype=np.float64)
    if method is not None and method not in METHODS:
        raise MonitorInputError(
            f"method={method!r} is not an Evidently embedding drift method; use one of {', '.join(METHODS)} or None"
        )
    methods_mod = import_evidently()
    metrics_mod = import_evidently("evidently.legacy.metrics")
    report_mod = import_evidently("evidently.legacy.report")
    mapping_mod = import_evidently("evidently.legacy.pipeline.column_mapping")
    drift_method = getattr(methods_mod, method)(**options) if method else None
    ref_df, cur_df = to_frame(ref), to_frame(cur)
    report = report_mod.Report(metrics=[metrics_mod.EmbeddingsDriftMetric(embeddings_name, drift_method=drift_method)])
    mapping = mapping_mod.ColumnMapping(
        embeddings={embeddings_name: list(ref_df.columns)}, target=None, prediction=None
    )
    report.run(reference_data=ref_df, current_data=cur_df, column_mapping=mapping)
    return report


def report_html(reference: Any, current: Any, **kwargs: Any) -> str:
    """The report as a self-contained HTML string."""
    return str(build_report(reference, current, **kwargs).get_html())


def save_report(reference: Any, current: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write the report's HTML to ``path`` (parent directories are created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_html(reference, current, **kwargs), encoding="utf-8")
    return out

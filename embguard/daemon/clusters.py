"""New-query clusters as pages and ``embguard status`` show them: size, share, distance, the terms that name them
and a few example queries instead of row numbers of a window that is gone once the report is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from embguard.checks.reports import CheckReport
from embguard.daemon.watched import Watched

CLUSTERS_SHOWN = 3
EXAMPLE_CHARS = 160


def described(
    w: Watched, cluster: Mapping[str, Any], describe: Callable[[Watched, Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    # Reports the daemon recorded carry their clusters described already (examples, no row numbers).
    return dict(cluster) if "examples" in cluster else describe(w, cluster)


def describe_report(
    w: Watched, report: CheckReport, describe: Callable[[Watched, Mapping[str, Any]], dict[str, Any]]
) -> CheckReport:
    """``report`` with its drifted clusters as pages and ``embguard status`` show them: size, share, distance
    and example texts instead of row numbers of a window that is gone once the report is written."""
    if not report.clusters:
        return report
    return replace(report, clusters=tuple(described(w, c, describe) for c in report.clusters[:CLUSTERS_SHOWN]))


def describe_cluster(
    w: Watched, cluster: Mapping[str, Any], texts_of: Callable[[str, list[Any], str], list[str]] | None = None
) -> dict[str, Any]:
    """A drifted cluster as a page shows it: its size, share, distance and a few example queries. Without
    stored query texts, the texts of the documents its queries hit first most often (``texts_of(collection, ids,
    field)``)."""
    window = w.window
    examples: list[str] = []
    if window is not None:
        rows = [r for r in cluster.get("rows", []) if r < window.size]
        examples = [window.texts[r][:EXAMPLE_CHARS] for r in rows if r < len(window.texts) and window.texts[r]]
        if not examples and w.spec.text_field and texts_of is not None:
            top1 = window.top1_ids  # empty for a window sampled without hits
            ids = list(cluster.get("hits") or [top1[r] for r in rows if r < len(top1) and top1[r] is not None])
            examples = [f"near: {t[:EXAMPLE_CHARS]}" for t in texts_of(window.collection, ids, w.spec.text_field)]
    return {
        "size": cluster["size"],
        "share": cluster["share"],
        "distance": cluster["distance"],
        "terms": list(cluster.get("terms", [])),
        "examples": examples,
    }

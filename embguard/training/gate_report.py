"""What ``embguard retrain`` and ``embguard models import`` report about a gated candidate (the gate report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import retrain
from embguard.models.registry import ModelVersion

__all__ = ["CandidateReport", "held_out_strata"]


@dataclass(frozen=True)
class CandidateReport:
    alias: str
    version: ModelVersion
    verdict: retrain.GateVerdict
    base_model_id: str
    n_train_pairs: int
    n_held_out: int
    train_seconds: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    held_out: tuple[tuple[str, frozenset[Any]], ...] = ()  # (query, relevant doc ids), never trained on
    source: str = ""  # where an imported candidate came from; empty for one trained here
    recipe: str = ""  # how it was trained ([retrain] recipe)
    strata: dict[str, dict[str, float]] = field(default_factory=dict)  # see held_out_strata
    notes: tuple[str, ...] = ()  # e.g. how recipe = "auto" chose
    reindex: bool = True  # False: the swap copies the serving vectors (a query adapter)

    @property
    def promoted(self) -> bool:
        return self.verdict.promote

    def __str__(self) -> str:
        v = self.verdict
        gain = v.gain
        made = (
            f"imported from {self.source}; gate on {self.n_held_out} held-out queries (embguard cannot know "
            "whether an imported model saw them)"
            if self.source
            else f"trained (recipe {self.recipe or 'finetune'}) on {self.n_train_pairs} pairs in "
            f"{self.train_seconds:.0f} s; gate on "
            f"{self.n_held_out} held-out queries never trained on"
        )
        lines = [f"candidate {self.version.version} ({self.version.model_id}) for {self.alias}, {made}:"]
        lines += [f"  {n}" for n in self.notes]
        lines.append(
            "  swap: re-embeds every document with the candidate"
            if self.reindex
            else "  swap: copies the serving collection's vectors (the candidate embeds documents exactly as the "
            "serving model does); only queries change"
        )
        for metric in ("ndcg@10", "recall@10", "mrr@10"):
            b, c = self.metrics["base"][metric], self.metrics["candidate"][metric]
            lines.append(f"  {metric:<10} base {b:.4f} -> candidate {c:.4f} ({100 * (c - b):+.2f} points)")
        lines.append(f"  nDCG@10 gain 95% CI [{gain.low:+.4f}, {gain.high:+.4f}]")
        for name, st in self.strata.items():
            misses = f", {st['base_misses']:.0f} the base model missed (no relevant document in its top 10)"
            lines.append(
                f"  {name} queries (n={st['n']:.0f}{misses}): nDCG@10 base {st['base']:.4f} -> candidate "
                f"{st['candidate']:.4f}"
            )
        if "clicked" in self.strata:
            lines.append(
                "  note: a click means the live model already showed the answer, so clicked queries favour the "
                "base model; labelled queries (embguard label import) are the ones that can show a fixed miss"
            )
        if v.guard_change is not None:
            lines.append(f"  guard nDCG@10 {v.guard_base_mean:.4f} -> {v.guard_candidate_mean:.4f}")
        for r in v.reasons:
            lines.append(f"  - {r}")
        if self.promoted:
            lines.append(f"PASSED: approve with `embguard retrain --approve --candidate {self.version.version}`")
        else:
            lines.append("REJECTED: the active model stays; nothing to approve")
        return "\n".join(lines)


def held_out_strata(
    labels: list[str], base: retrain.PerQueryScores, candidate: retrain.PerQueryScores
) -> dict[str, dict[str, float]]:
    """nDCG@10 of base and candidate per stratum of the held-out queries, and how many the base model missed."""
    out: dict[str, dict[str, float]] = {}
    arr = np.array(labels)
    for name in sorted(set(labels)):
        mask = arr == name
        out[name] = {
            "n": float(mask.sum()),
            "base": float(np.mean(base.scores["ndcg@10"][mask])),
            "candidate": float(np.mean(candidate.scores["ndcg@10"][mask])),
            "base_misses": float(np.sum(base.scores["recall@10"][mask] == 0)),
        }
    return out

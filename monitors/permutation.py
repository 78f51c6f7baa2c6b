"""Shared permutation machinery: one set of random splits of the pooled windows, read by every member.

A *split* assigns ``n_ref`` of the ``n_ref + n_cur`` pooled rows to the reference side. Row 0 of the assignment
matrix is the observed split (reference rows first); the others are uniform random splits. A member that can
compute its statistic for every split (``split_statistics``) joins the page's shared null (:mod:`monitors.page`):
under no drift the pooled rows are exchangeable, so the observed split is one uniform draw among them and any
statistic of (pooled rows, split), including a maximum over members, gets an exact p-value.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import torch

from .base import InputKind

# Splits are read in blocks of this many rows so a statistic's working memory is bounded (a float64 block of
# 128 splits x 40,000 pooled rows is 41 MB) whatever the permutation count.
BLOCK = 128


def assignments(n_ref: int, n_cur: int, n_perm: int, gen: torch.Generator) -> torch.Tensor:
    """(1 + n_perm) x (n_ref + n_cur) int8 0/1 matrix marking the rows assigned to the reference side."""
    n = n_ref + n_cur
    assigned = torch.zeros((1 + n_perm, n), dtype=torch.int8)
    assigned[0, :n_ref] = 1
    # Filled in place, one row per permutation (no index matrix, no concatenated copy). randperm per row is ~4x
    # faster than argsort of a random matrix at 20k columns.
    for row in assigned[1:]:
        row.index_fill_(0, torch.randperm(n, generator=gen)[:n_ref], 1)
    return assigned


def blocks(assigned: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(assigned, BLOCK))


def p_value(stats: np.ndarray) -> float:
    """``(1 + #{b >= 1: T_b >= T_0}) / (1 + B)`` with a float tolerance so exact ties count as ``>=``."""
    observed = float(stats[0])
    exceed = int((stats[1:] >= observed - 1e-12 * max(abs(observed), 1e-30)).sum())
    return (1 + exceed) / len(stats)


def split_p_values(stats: np.ndarray) -> np.ndarray:
    """For every split b, the share of splits whose statistic is at least T_b: each split's own permutation p-value
    against all the others (row 0's is the member's p-value). Ties count as ``>=``."""
    s = np.asarray(stats, dtype=np.float64)
    tol = 1e-12 * np.maximum(np.abs(s), 1e-30)
    ordered = np.sort(s)
    # number of values >= s_b - tol
    below = np.searchsorted(ordered, s - tol, side="left")
    return (len(s) - below) / len(s)


@runtime_checkable
class SplitStatistic(Protocol):
    """A detector that can join a shared null: fitted on the reference, it returns its statistic (larger = more
    drift) for every split of the pooled reference + current rows that ``assigned`` marks."""

    name: str
    input_kind: InputKind
    alpha: float

    def fit(self, reference: Any) -> Self: ...

    def split_statistics(self, current: Any, assigned: torch.Tensor) -> np.ndarray: ...

    def reference_size(self) -> int: ...

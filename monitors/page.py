"""The page: one calibrated decision over several monitors that share one permutation null.

Every member computes its own statistic (larger = more drift) on the *same* random splits of the pooled reference
and current rows (:mod:`monitors.permutation`). For each split ``b`` and member ``m``, ``p[m, b]`` is the share of
splits whose statistic is at least the one of ``b``: member ``m``'s permutation p-value had ``b`` been the observed
split. The page statistic is the smallest member p-value, ``minp[b] = min_m p[m, b]``, and the page p-value is the
rank of the observed ``minp[0]`` among all splits' ``minp``:

    p_page = #{b : minp[b] <= minp[0]} / (1 + B)

Guarantee: under no drift the pooled rows are exchangeable, the observed split is one uniform draw among the
``1 + B``, and ``P(p_page <= alpha) <= alpha`` exactly, for any number of members and any dependence between them
(they read the same rows). This is the max-type test of Westfall & Young (1993, single-step minP) and the idea of
MMDAgg (Schrab et al. 2023) extended across monitors: the price of several members is the dependence-aware
quantile of their minimum, not Holm's worst-case factor ``m``, so a page is within the permutation noise of its
best member when that member carries the evidence, and above it when several see some. ``carried_by`` names the
members whose adjusted p-value ``#{b : minp[b] <= p[m, 0]} / (1 + B)`` is ``<= alpha``: each is itself a claim with
family-wise error ``<= alpha``.

A member is any detector with ``split_statistics(current, assigned)`` and ``reference_size()``
(:class:`~monitors.permutation.SplitStatistic`): :class:`~monitors.MMDDetector`, :class:`~monitors.NeighbourDetector`,
:class:`~monitors.RetrievalClusterDetector`, :class:`~monitors.Top1SimilarityDetector`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import torch

from . import permutation
from ._validate import check_alpha, check_int, frozen, require_fitted
from .base import InputKind
from .errors import MonitorInputError
from .permutation import SplitStatistic
from .result import DriftResult


def permutations_for(alpha: float) -> int:
    """Splits for a page at level ``alpha``: about ten splits per ``alpha`` mass (999 at 0.01, 199 at 0.05), so
    the permutation p-value's resolution costs little power; at least 199."""
    return max(199, math.ceil(10 / check_alpha(alpha)) - 1)


def guarantee(alpha: float, members: int) -> str:
    return (
        f"P(page on a no-drift window) <= {alpha:.3g}, exactly, for any dependence between the {members} members "
        "(one permutation null shared by all; Westfall-Young minP); each member it names carries the page at "
        f"family-wise error <= {alpha:.3g}"
    )


class Page:
    """Members that share one permutation null, and one exact decision for all of them.

    ``fit`` and ``check`` take a mapping from member name, or from input kind (``"vectors"``, ``"top_ids"``,
    ``"similarities"``), to that member's input; every member's rows are the same queries in the same order.
    ``members_fitted=True`` when the caller has fitted every member already (then ``fit`` is optional).
    """

    input_kind: InputKind = "inputs"

    def __init__(
        self,
        members: Mapping[str, Any],
        *,
        alpha: float = 0.01,
        n_permutations: int | None = None,
        seed: int = 0,
        name: str = "page",
        members_fitted: bool = False,
    ) -> None:
        if not members:
            raise MonitorInputError(
                "members: empty; pass e.g. {'mmd': MMDDetector(), 'neighbours': NeighbourDetector()}"
            )
        bad = [n for n, d in members.items() if not isinstance(d, SplitStatistic)]
        if bad:
            raise MonitorInputError(
                f"members: {', '.join(bad)} cannot share a permutation null (need split_statistics() and "
                "reference_size()); check them on their own, or use monitors.CombinedDetector (Holm)"
            )
        self.members: dict[str, SplitStatistic] = dict(members)
        self.alpha = check_alpha(alpha)
        self.n_permutations = check_int(
            permutations_for(self.alpha) if n_permutations is None else n_permutations, "n_permutations", 19
        )
        self.seed = int(seed)
        self.name = name
        self._fitted = bool(members_fitted)
        self._gen = self._generator()

    def _inputs(self, data: Any, what: str) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise MonitorInputError(
                f"{what}: {type(data).__name__} is not a mapping; pass {{member name or input kind: input}} for "
                f"members {', '.join(self.members)}"
            )
        out, missing = {}, []
        for name, det in self.members.items():
            if name in data:
                out[name] = data[name]
            elif det.input_kind in data:
                out[name] = data[det.input_kind]
            else:
                missing.append(f"{name} ({det.input_kind})")
        if missing:
            raise MonitorInputError(f"{what}: no input for member(s) {', '.join(missing)}; pass one per member")
        sizes = {name: len(x) for name, x in out.items()}
        if len(set(sizes.values())) > 1:
            raise MonitorInputError(
                f"{what}: members' inputs have different row counts {sizes}; each row is one query, for every member"
            )
        return out

    def fit(self, reference: Any) -> Self:
        ref = self._inputs(reference, "reference")
        for name, det in self.members.items():
            det.fit(ref[name])
        self._fitted = True
        self._gen = self._generator()
        return self

    def _generator(self) -> torch.Generator:
        # Derived from the seed, not the seed itself: a member seeded alike (NeighbourDetector(seed=0) draws its
        # graph's row order from its own generator) must not draw the same permutation as the page's first split.
        return torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, 0x9A6E]).generate_state(1)[0]))

    def check(self, current: Any) -> DriftResult:
        require_fitted(self._fitted, type(self).__name__)
        cur = self._inputs(current, "current")
        sizes = {name: det.reference_size() for name, det in self.members.items()}
        if len(set(sizes.values())) > 1:
            raise MonitorInputError(f"members were fitted on references of different sizes {sizes}; refit the page")
        n_ref, n_cur = next(iter(sizes.values())), len(next(iter(cur.values())))
        assigned = permutation.assignments(n_ref, n_cur, self.n_permutations, self._gen)
        with torch.no_grad():
            stats = {name: np.asarray(det.split_statistics(cur[name], assigned)) for name, det in self.members.items()}
        split_p = {name: permutation.split_p_values(s) for name, s in stats.items()}
        min_p = np.min(np.stack(list(split_p.values())), axis=0)
        total = len(min_p)
        own = {name: float(p[0]) for name, p in split_p.items()}
        adjusted = {name: int((min_p <= p + 1e-12).sum()) / total for name, p in own.items()}
        p_page = min(adjusted.values())
        carried = tuple(n for n in sorted(adjusted, key=lambda n: (adjusted[n], n)) if adjusted[n] <= self.alpha)
        results = {
            name: DriftResult(
                method=det.name,
                statistic=float(stats[name][0]),
                p_value=own[name],
                threshold=None,
                drift=own[name] <= self.alpha,
                alpha=self.alpha,
                n_reference=n_ref,
                n_current=n_cur,
                params=frozen({"n_permutations": self.n_permutations, "null": "shared with the page"}),
            )
            for name, det in self.members.items()
        }
        return DriftResult(
            method=self.name,
            statistic=float(-math.log10(p_page)),
            p_value=float(p_page),
            threshold=None,
            drift=bool(p_page <= self.alpha),
            alpha=self.alpha,
            n_reference=n_ref,
            n_current=n_cur,
            params=frozen(
                {
                    "method": "shared permutation minP",
                    "members": tuple(self.members),
                    "n_permutations": self.n_permutations,
                    "seed": self.seed,
                    "guarantee": guarantee(self.alpha, len(self.members)),
                }
            ),
            details=frozen(
                {
                    "carried_by": carried,
                    "p_values": frozen(own),
                    "adjusted": frozen(adjusted),
                    "results": frozen(results),
                }
            ),
        )

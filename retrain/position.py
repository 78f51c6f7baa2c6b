"""Position bias in clicks: how much a click says, given the rank it was shown at.

Users examine the top of a result list more than its tail, so a click at rank 1 is partly the rank's doing
and a click at rank 8 means the user looked past seven results to find it. The standard correction
(Joachims et al., 2017, "Unbiased Learning-to-Rank with Biased Feedback") weights a click by the inverse
of the probability that its rank was examined. Here that probability follows the position-based model

    p(r) = (1 / r) ** eta        (eta = 1: examination falls as 1/r)

and a click's weight is ``p(1) / p(r)``, clipped at ``cap`` (inverse propensities of deep ranks blow up and
one lucky click would dominate), so a rank-1 click weighs exactly 1 and a click of unknown rank also 1.

A shown but unclicked result is *not* evidence against it: it may simply not have been examined, so
skipped results never become negatives (see ``retrain.pairs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

DEFAULT_ETA = 1.0
DEFAULT_CAP = 10.0


@dataclass(frozen=True)
class PositionBias:
    """The examination model clicks are corrected under: ``p(r) = (1/r)**eta``, weights clipped at ``cap``."""

    eta: float = DEFAULT_ETA
    cap: float = DEFAULT_CAP

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"PositionBias.eta={self.eta!r} must be a finite number >= 0 (0: no position bias)")
        if not (math.isfinite(self.cap) and self.cap >= 1):
            raise ConfigError(f"PositionBias.cap={self.cap!r} must be a finite number >= 1 (a rank-1 click weighs 1)")

    def propensity(self, rank: int) -> float:
        """The probability that a user examines the result shown at 1-based ``rank``."""
        return examination_propensity(rank, self.eta)

    def weight(self, rank: int | None) -> float:
        """A click's inverse-propensity weight at ``rank``, normalised to 1 at rank 1; 1 when the rank is unknown."""
        if rank is None:
            return 1.0
        return min(self.propensity(1) / self.propensity(rank), self.cap)


def examination_propensity(rank: int, eta: float = DEFAULT_ETA) -> float:
    """``(1 / rank) ** eta``: the probability that the result at 1-based ``rank`` is examined."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1 (1 = the top result), got {rank!r}")
    return float((1.0 / rank) ** eta)


def click_weight(rank: int | None, eta: float = DEFAULT_ETA, cap: float = DEFAULT_CAP) -> float:
    """The inverse-propensity weight of one click shown at ``rank`` (None: unknown rank, weight 1)."""
    return PositionBias(eta, cap).weight(rank)

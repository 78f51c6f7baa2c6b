"""Small typed objects the tests build by hand (imported as ``from builders import ...``, like ``backends``)."""

from __future__ import annotations

from retrain import GateConfig, GateVerdict
from retrain.bootstrap import Interval


def gate_verdict(base: float = 0.5, candidate: float = 0.56, reason: str = "gain") -> GateVerdict:
    """A passing gate verdict with the given means, as the registry stores one."""
    gain = Interval(mean=candidate - base, low=0.01, high=0.1, confidence=0.95, resamples=2000, n=40)
    return GateVerdict(
        promote=True,
        reasons=(reason,),
        metric="ndcg@10",
        base_mean=base,
        candidate_mean=candidate,
        gain=gain,
        guard_base_mean=None,
        guard_candidate_mean=None,
        guard_change=None,
        means={},
        config=GateConfig(),
    )

import json

import numpy as np
import pytest

from retrain import ConfigError, GateConfig, GateVerdict, bootstrap_mean, decide, paired_difference, score_rankings

N = 200
DOCS = [f"d{i}" for i in range(20)]


def _rankings(rank_of_relevant: np.ndarray) -> list[list[str]]:
    """One query per entry; the relevant doc (d0) is placed at the given 0-based rank (>= 10: absent)."""
    out = []
    for r in rank_of_relevant:
        others = [d for d in DOCS if d != "d0"]
        ranked = others[: int(r)] + ["d0"] + others[int(r) :] if r < 10 else others[:10]
        out.append(ranked[:10])
    return out


REL = [{"d0"}] * N


def _scores(ranks: np.ndarray):  # type: ignore[no-untyped-def]
    return score_rankings(_rankings(ranks), REL)


@pytest.fixture()
def base_ranks() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 12, N)


def test_worse_candidate_is_rejected(base_ranks: np.ndarray) -> None:
    cand = np.minimum(base_ranks + 2, 12)
    v = decide(_scores(base_ranks), _scores(cand), GateConfig(min_gain=0.0))
    assert not v.promote and v.gain.mean < 0 and v.candidate_mean < v.base_mean


def test_identical_candidate_is_not_promoted_with_a_positive_margin(base_ranks: np.ndarray) -> None:
    v = decide(_scores(base_ranks), _scores(base_ranks), GateConfig(min_gain=0.01))
    assert not v.promote and v.gain.mean == 0


def test_clearly_better_candidate_is_promoted(base_ranks: np.ndarray) -> None:
    cand = np.maximum(base_ranks - 4, 0)
    v = decide(_scores(base_ranks), _scores(cand), GateConfig(min_gain=0.02))
    assert v.promote and v.gain.low >= 0.02


def test_better_on_task_but_guard_regresses_is_rejected(base_ranks: np.ndarray) -> None:
    better = np.maximum(base_ranks - 4, 0)
    guard_base = np.zeros(N, dtype=int)
    guard_cand = np.full(N, 3)
    v = decide(
        _scores(base_ranks),
        _scores(better),
        GateConfig(min_gain=0.0, guard_tolerance=0.05),
        _scores(guard_base),
        _scores(guard_cand),
    )
    assert not v.promote and v.guard_change is not None and v.guard_change.mean < -0.05
    assert any("guard" in r for r in v.reasons)
    ok = decide(
        _scores(base_ranks),
        _scores(better),
        GateConfig(min_gain=0.0, guard_tolerance=0.05),
        _scores(guard_base),
        _scores(guard_base),
    )
    assert ok.promote


def test_too_few_queries_never_promote() -> None:
    base, cand = np.full(5, 9), np.zeros(5, dtype=int)
    v = decide(score_rankings(_rankings(base), [{"d0"}] * 5), score_rankings(_rankings(cand), [{"d0"}] * 5))
    assert not v.promote and "min_queries" in v.reasons[0]


def test_verdict_serialises_every_number(base_ranks: np.ndarray) -> None:
    v = decide(_scores(base_ranks), _scores(np.maximum(base_ranks - 1, 0)))
    d = json.loads(v.to_json())
    assert {"promote", "gain", "base_mean", "candidate_mean", "config", "means", "reasons"} <= d.keys()
    assert d["gain"]["resamples"] == 2000 and d["config"]["min_gain"] == 0.0


def test_a_stored_verdict_reads_back_equal_with_and_without_a_guard(base_ranks: np.ndarray) -> None:
    better = np.maximum(base_ranks - 1, 0)
    plain = decide(_scores(base_ranks), _scores(better), GateConfig(min_gain=0.01, seed=3))
    guarded = decide(_scores(base_ranks), _scores(better), GateConfig(), _scores(base_ranks), _scores(better))
    for v in (plain, guarded):
        assert GateVerdict.from_dict(json.loads(v.to_json())) == v
    with pytest.raises(KeyError):
        GateVerdict.from_dict({"promote": True})


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    x = np.random.default_rng(3).normal(0.1, 1.0, 500)
    a, b = bootstrap_mean(x, seed=1), bootstrap_mean(x, seed=1)
    assert a == b and a.low < x.mean() < a.high
    assert a.high - a.low == pytest.approx(2 * 1.96 / np.sqrt(500), rel=0.2)
    with pytest.raises(Exception, match="same queries"):
        paired_difference(np.zeros(3), np.zeros(4))


def test_bad_gate_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="guard_tolerance"):
        GateConfig(guard_tolerance=-1)


def test_a_gain_whose_mean_clears_the_margin_but_whose_lower_bound_does_not_is_rejected() -> None:
    base = np.full(N, 5)
    cand = base.copy()
    cand[:15] = 0  # a few queries improve a lot: positive mean, wide interval
    probe = decide(_scores(base), _scores(cand), GateConfig(min_gain=0.0))
    assert probe.gain.low < probe.gain.mean
    margin = (probe.gain.low + probe.gain.mean) / 2
    v = decide(_scores(base), _scores(cand), GateConfig(min_gain=margin))
    assert v.gain.mean >= margin and not v.promote

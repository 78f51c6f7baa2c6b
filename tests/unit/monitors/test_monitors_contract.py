"""Every detector goes through the same contract: good input gives a frozen result, bad input a clear error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import monitors
from monitors import (
    INPUT_KINDS,
    ClassifierDetector,
    CombinedDetector,
    Detector,
    DriftResult,
    EvidentlyDetector,
    ExactMMDDetector,
    KNNOODDetector,
    MMDDetector,
    MonitorInputError,
    NeighbourDetector,
    NotFittedError,
    Page,
    RetrievalClusterDetector,
    SequentialDetector,
    Top1SimilarityDetector,
)

D = 16
RNG = np.random.default_rng(0)
REF = RNG.standard_normal((60, D))
CUR = RNG.standard_normal((50, D))


def _with_row(x: np.ndarray, row: int, value: float) -> np.ndarray:
    y = x.copy()
    y[row, 3] = value
    return y


MATRIX_BAD: dict[str, tuple[Any, str]] = {
    "1-D": (CUR[0], "expected a 2-D array"),
    "3-D": (CUR[None], "expected a 2-D array"),
    "empty": (np.zeros((0, D)), "0 rows, need at least"),
    "too-small": (CUR[:5], "5 rows, need at least 10"),
    "nan-row": (_with_row(CUR, 7, np.nan), "rows [7] contain NaN or inf"),
    "inf-row": (_with_row(CUR, 12, np.inf), "rows [12] contain NaN or inf"),
    "dimension": (RNG.standard_normal((50, D + 1)), f"dimension {D + 1}"),
    "strings": (np.full((50, D), "x"), "not a real number type"),
    "complex": (CUR.astype(complex), "not a real number type"),
    "bool": (CUR > 0, "not a real number type"),
    "ragged": ([[1.0, 2.0], [1.0]], "current"),
}
VECTOR_BAD: dict[str, tuple[Any, str]] = {
    "2-D": (CUR, "expected a 1-D array"),
    "empty": (np.zeros(0), "0 values, need at least"),
    "too-small": (np.ones(5), "5 values, need at least 10"),
    "nan": (np.r_[np.ones(20), np.nan], "entries [20] are NaN or inf"),
    "strings": (np.array(["a"] * 20), "not a real number type"),
}
IDS_BAD: dict[str, tuple[Any, str]] = {
    "3-D": (np.zeros((20, 2, 2), dtype=int), "expected a 1-D array"),
    "empty": (np.zeros(0, dtype=int), "0 ids, need at least"),
    "too-small": (np.arange(5), "5 ids, need at least 10"),
    "floats": (np.linspace(0, 1, 20), "not an id type"),
}


TOPK_BAD: dict[str, tuple[Any, str]] = {
    "too-few-queries": ([[1, 2]] * 5, "5 queries with hits, need at least 10"),
    "empty-hits": ([[]] * 20, "0 queries with hits"),
    "float-ids": ([[0.5, 1.5]] * 20, "hit id 0.5 is not an id type"),
    "float-matrix": (np.linspace(0, 1, 40).reshape(20, 2), "not an id type"),
}
COMBINED_BAD: dict[str, tuple[Any, str]] = {
    "not-a-mapping": (CUR, "is not a mapping"),
    "missing-member": ({"mmd": CUR}, "no input for member"),
    "bad-member-input": ({"mmd": CUR[:5], "top1": RNG.uniform(0.3, 0.9, 50)}, "5 rows, need at least 10"),
}

PAGE_BAD: dict[str, tuple[Any, str]] = {
    "not-a-mapping": (CUR, "is not a mapping"),
    "missing-member": ({"vectors": CUR}, r"no input for member\(s\) top1 \(similarities\)"),
    "rows-differ": ({"vectors": CUR, "similarities": RNG.uniform(0.3, 0.9, 40)}, "different row counts"),
    "bad-member-input": ({"vectors": CUR[:5], "similarities": RNG.uniform(0.3, 0.9, 5)}, "5 rows, need at least 10"),
}


@dataclass
class Case:
    make: Callable[[], Any]
    reference: Any
    current: Any
    bad: dict[str, tuple[Any, str]]
    input_kind: str = "vectors"


_DOCS = np.arange(40)
CASES: dict[str, Case] = {
    "mmd": Case(lambda: MMDDetector(n_permutations=99), REF, CUR, MATRIX_BAD),
    "mmd_exact": Case(lambda: ExactMMDDetector(n_permutations=99), REF, CUR, MATRIX_BAD),
    "classifier": Case(ClassifierDetector, REF, CUR, MATRIX_BAD),
    "evidently_model": Case(lambda: EvidentlyDetector("model"), REF, CUR, MATRIX_BAD),
    "evidently_mmd": Case(lambda: EvidentlyDetector("mmd"), REF, CUR, MATRIX_BAD),
    "evidently_ratio": Case(lambda: EvidentlyDetector("ratio"), REF, CUR, MATRIX_BAD),
    "evidently_distance": Case(lambda: EvidentlyDetector("distance"), REF, CUR, MATRIX_BAD),
    "sequential_mmd": Case(
        lambda: SequentialDetector(MMDDetector(n_permutations=99), consecutive=2), REF, CUR, MATRIX_BAD
    ),
    "knn_ood": Case(
        lambda: KNNOODDetector(k=3, quantile=0.9, holdout=0.3),
        REF,
        CUR,
        {k: v for k, v in MATRIX_BAD.items() if k != "ragged"},
    ),
    "top1": Case(
        Top1SimilarityDetector, RNG.uniform(0.3, 0.9, 80), RNG.uniform(0.3, 0.9, 70), VECTOR_BAD, "similarities"
    ),
    "retrieval": Case(
        lambda: RetrievalClusterDetector(_DOCS, _DOCS % 4),
        RNG.integers(0, 40, 200),
        RNG.integers(0, 40, 150),
        IDS_BAD,
        "top_ids",
    ),
    "retrieval_topk": Case(
        lambda: RetrievalClusterDetector(_DOCS, _DOCS % 4, n_permutations=99),
        RNG.integers(0, 40, (200, 5)),
        RNG.integers(0, 40, (150, 5)),
        TOPK_BAD,
        "top_ids",
    ),
    "neighbours": Case(lambda: NeighbourDetector(k=5, n_permutations=99), REF, CUR, MATRIX_BAD),
    "page": Case(
        lambda: Page({"mmd": MMDDetector(), "top1": Top1SimilarityDetector()}, n_permutations=99),
        {"vectors": REF, "similarities": RNG.uniform(0.3, 0.9, 60)},
        {"vectors": CUR, "similarities": RNG.uniform(0.3, 0.9, 50)},
        PAGE_BAD,
        "inputs",
    ),
    "combined": Case(
        lambda: CombinedDetector({"mmd": MMDDetector(n_permutations=99), "top1": Top1SimilarityDetector()}),
        {"mmd": REF, "top1": RNG.uniform(0.3, 0.9, 60)},
        {"mmd": CUR, "top1": RNG.uniform(0.3, 0.9, 50)},
        COMBINED_BAD,
        "inputs",
    ),
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_fit_check_returns_a_frozen_complete_result(case: Case) -> None:
    det = case.make()
    assert isinstance(det, Detector)
    assert isinstance(det.name, str) and det.name
    assert det.input_kind == case.input_kind and det.input_kind in INPUT_KINDS
    assert det.fit(case.reference) is det
    res = det.check(case.current)
    assert type(res) is DriftResult
    assert isinstance(res.drift, bool)
    first = next(iter(case.current.values())) if isinstance(case.current, dict) else case.current
    first_ref = next(iter(case.reference.values())) if isinstance(case.reference, dict) else case.reference
    assert res.n_current == len(first)
    assert res.n_reference == len(first_ref)
    assert np.isfinite(res.statistic)
    if res.p_value is None:  # fixed-threshold method: the threshold replaces the test
        assert res.threshold is not None and res.alpha is None
    else:
        assert 0.0 < res.p_value <= 1.0 and res.alpha is not None
        assert res.drift == (res.p_value <= res.alpha)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.drift = not res.drift  # type: ignore[misc]
    with pytest.raises(TypeError):
        res.params["injected"] = 1  # type: ignore[index]


def test_check_before_fit_is_a_clear_error(case: Case) -> None:
    with pytest.raises(NotFittedError, match=r"before fit\(\); call fit\(reference\) first"):
        case.make().check(case.current)


@pytest.mark.parametrize(("case_name", "bad"), [(c, b) for c in sorted(CASES) for b in CASES[c].bad])
def test_bad_current_window_is_a_clear_error(case_name: str, bad: str) -> None:
    case = CASES[case_name]
    value, message = case.bad[bad]
    det = case.make().fit(case.reference)
    with pytest.raises(MonitorInputError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        det.check(value)
    assert isinstance(info.value, ValueError)


def test_bad_reference_is_a_clear_error(case: Case) -> None:
    for name, (value, _) in case.bad.items():
        if name in ("dimension", "bad-member-input"):  # any dimension is fine for a reference
            continue
        with pytest.raises(MonitorInputError):
            case.make().fit(value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("case_name", [c for c in sorted(CASES) if CASES[c].bad is MATRIX_BAD or c == "knn_ood"])
def test_accepts_real_dtypes_and_leaves_inputs_untouched(case_name: str, dtype: type) -> None:
    case = CASES[case_name]
    ref = (case.reference * (10 if dtype is np.int64 else 1)).astype(dtype)
    cur = (case.current * (10 if dtype is np.int64 else 1)).astype(dtype)
    ref_copy, cur_copy = ref.copy(), cur.copy()
    case.make().fit(ref).check(cur)
    np.testing.assert_array_equal(ref, ref_copy)
    np.testing.assert_array_equal(cur, cur_copy)


def test_identical_windows_do_not_alarm_for_calibrated_tests() -> None:
    x = np.random.default_rng(3).standard_normal((40, D))
    for det in (MMDDetector(), ExactMMDDetector()):
        assert not det.fit(x).check(x).drift


def test_results_are_reproducible_given_seed() -> None:
    a = MMDDetector(seed=7).fit(REF).check(CUR)
    b = MMDDetector(seed=7).fit(REF).check(CUR)
    assert a == b


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(MonitorInputError, match="alpha=1.5 must lie strictly between 0 and 1"):
        MMDDetector(alpha=1.5)
    with pytest.raises(MonitorInputError, match="n_permutations=5 must be an integer >= 19"):
        MMDDetector(n_permutations=5)
    with pytest.raises(MonitorInputError, match="quantile=0.2"):
        KNNOODDetector(quantile=0.2)
    with pytest.raises(MonitorInputError, match="method='pca' is not an Evidently"):
        EvidentlyDetector("pca")  # type: ignore[arg-type]
    with pytest.raises(MonitorInputError, match="labels: expected 40 integer cluster labels"):
        RetrievalClusterDetector(_DOCS, np.zeros(3, dtype=int))
    with pytest.raises(MonitorInputError, match="not a detector"):
        SequentialDetector(object())  # type: ignore[arg-type]
    with pytest.raises(MonitorInputError, match="returns no p-value"):
        SequentialDetector(EvidentlyDetector("distance"), window_alpha=0.05).fit(REF).check(CUR)
    with pytest.raises(MonitorInputError, match="method='fisher' must be one of holm, cauchy"):
        CombinedDetector({"mmd": MMDDetector()}, method="fisher")  # type: ignore[arg-type]
    with pytest.raises(MonitorInputError, match="members: x not detectors"):
        CombinedDetector({"x": object()})  # type: ignore[dict-item]


def test_exact_mmd_refuses_windows_too_large_for_the_kernel_matrix() -> None:
    det = ExactMMDDetector(max_rows=100).fit(REF)
    with pytest.raises(MonitorInputError, match="exceed max_rows=100.*use MMDDetector"):
        det.check(np.zeros((50, D)))


def test_knn_ood_needs_enough_reference_rows() -> None:
    with pytest.raises(MonitorInputError, match="too few for k=10, quantile=0.95"):
        KNNOODDetector().fit(REF[:30])


def test_public_api_is_curated_and_never_imports_embguard() -> None:
    import subprocess
    import sys

    code = (
        "import sys, monitors; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('embguard', 'retrain', 'evidently')]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(monitors.__file__).parents[1]),
    )
    assert out.stdout.strip() == "[]"
    for name in monitors.__all__:
        assert hasattr(monitors, name), name

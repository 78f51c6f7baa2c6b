"""Evidently's methods called directly agree with its Report; the HTML report builds; inputs stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from monitors import EvidentlyDetector, build_report, save_report


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((120, 24)), rng.standard_normal((100, 24)) + 0.3


# Each Report takes ~10 s (mostly t-SNE) even for tiny windows: the agreement checks run on the slow tier; the fast
# tier still runs the detector (here and in test_monitors_contract) without building a Report.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["model", "mmd", "distance", "ratio"])
def test_direct_call_matches_the_report(windows: tuple[np.ndarray, np.ndarray], method: str) -> None:
    ref, cur = windows
    direct = EvidentlyDetector(method).fit(ref).check(cur)  # type: ignore[arg-type]
    result = build_report(ref, cur, method=method).as_dict()["metrics"][0]["result"]
    assert direct.statistic == pytest.approx(result["drift_score"], rel=1e-9)
    assert direct.drift == result["drift_detected"]
    assert direct.p_value is None and direct.alpha is None and direct.threshold is not None


@pytest.mark.slow  # the first Evidently Report of a process costs 10-45 s (imports, t-SNE): not the fast tier
def test_html_report_is_saved(tmp_path, windows: tuple[np.ndarray, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    ref, cur = windows
    path = save_report(ref, cur, tmp_path / "sub" / "report.html", method="distance")
    html = path.read_text(encoding="utf-8")
    assert path.is_file() and "<html" in html.lower() and len(html) > 10_000

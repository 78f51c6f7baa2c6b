"""Package boundaries: pure, no embguard/monitors, heavy training stack behind one module, cheap import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[3] / "retrain"


def _importers(name: str) -> list[str]:
    pat = re.compile(rf"^\s*(from|import)\s+{re.escape(name)}(\.|\s|$)", re.M)
    return sorted(p.name for p in PKG.rglob("*.py") if pat.search(p.read_text()))


@pytest.mark.parametrize("forbidden", ["embguard", "monitors"])
def test_retrain_never_imports_the_service_packages(forbidden: str) -> None:
    assert _importers(forbidden) == []


@pytest.mark.parametrize("heavy", ["sentence_transformers", "datasets", "transformers"])
def test_heavy_training_dependencies_live_in_one_module(heavy: str) -> None:
    assert _importers(heavy) == ["finetune.py"]


def test_importing_retrain_does_not_load_the_training_stack() -> None:
    code = (
        "import sys, retrain; heavy = [m for m in ('sentence_transformers', 'transformers', 'datasets') "
        "if m in sys.modules]; print(heavy); assert not heavy"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=PKG.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_public_api_is_exported() -> None:
    import retrain

    missing = [n for n in retrain.__all__ if not hasattr(retrain, n)]
    assert missing == []
    assert issubclass(retrain.TrainingFailed, retrain.RetrainError)
    assert issubclass(retrain.LeakageError, retrain.RetrainError)

"""Packaging: the wheel's PEP 561 markers, torch as a range with the exact build in constraints.txt, and the
pytest warning filters that turn our own deprecations into failures."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("embguard", "monitors", "retrain")


def test_the_wheel_carries_the_py_typed_markers(tmp_path: Path) -> None:
    # Built from a copy of the sources (setuptools writes build/ and *.egg-info beside what it builds), offline:
    # no index, no build isolation (the venv's setuptools), no dependencies.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    for package in OUR_PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    res = subprocess.run([*cmd, "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    (wheel,) = out.glob("embguard-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    for package in OUR_PACKAGES:
        assert f"{package}/py.typed" in names, package
    (torch,) = [Requirement(r) for r in requires if Requirement(r).name == "torch"]
    assert not any(s.operator in ("==", "===") for s in torch.specifier), torch

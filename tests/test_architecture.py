"""The import direction is a contract: embguard -> monitors, embguard -> retrain, never back, never across."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _contracts_ini() -> str:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    out = ["[importlinter]", "root_packages =", *[f"    {p}" for p in cfg["root_packages"]]]
    for i, c in enumerate(cfg["contracts"]):
        out += [f"[importlinter:contract:{i}]", f"name = {c['name']}", f"type = {c['type']}"]
        for key, value in c.items():
            if isinstance(value, list):
                out += [f"{key} =", *[f"    {v}" for v in value]]
    return "\n".join(out) + "\n"


def _lint(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(LINT), "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": str(cwd)})


def test_the_real_packages_keep_the_contracts() -> None:
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 2 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "imports"), [
    ("monitors", "from embguard import config"),
    ("retrain", "import embguard.milvus"),
    ("retrain", "from monitors import something"),
])
def test_the_check_fails_when_the_direction_is_broken(tmp_path: Path, module: str, imports: str) -> None:
    for pkg in ("embguard", "monitors", "retrain"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "embguard" / "config.py").write_text("")
    (tmp_path / "embguard" / "milvus.py").write_text("")
    (tmp_path / "monitors" / "something.py").write_text("")
    (tmp_path / module / "bad.py").write_text(imports + "\n")
    ini = tmp_path / ".importlinter"
    ini.write_text(_contracts_ini())
    res = _lint(tmp_path, ini)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and f"{module}.bad" in res.stdout


HEAVY = ("pymilvus", "sentence_transformers", "evidently", "apscheduler", "click")
OWNERS = {"pymilvus": "embguard/milvus.py", "sentence_transformers": "embguard/model.py", "click": "embguard/cli.py"}


@pytest.mark.parametrize("dep", HEAVY)
def test_heavy_dependencies_are_imported_in_one_module_per_package(dep: str) -> None:
    for pkg in ("embguard", "monitors", "retrain"):
        users = sorted(str(p.relative_to(REPO)) for p in (REPO / pkg).rglob("*.py")
                       if f"import {dep}" in p.read_text() or f"from {dep}" in p.read_text())
        assert len(users) <= 1, f"{dep} is imported by {users}; keep it behind one module"
        if pkg == "embguard" and dep in OWNERS:
            assert users == [OWNERS[dep]]

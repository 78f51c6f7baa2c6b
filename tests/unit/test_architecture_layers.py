"""The import direction is a contract: embguard -> monitors, embguard -> retrain, never back, never across."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
    assert "Contracts: 4 kept, 0 broken" in res.stdout


def _layer_modules() -> list[str]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [
        m.strip()
        for c in cfg["contracts"]
        if c["type"] == "layers"
        for layer in c["layers"]
        for m in layer.replace("|", ":").split(":")
    ]


@pytest.mark.parametrize(
    ("module", "bad", "imports"),
    [
        ("monitors", "bad", "from embguard import config"),
        ("retrain", "bad", "import embguard.milvus"),
        ("retrain", "bad", "from monitors import something"),
        ("embguard", "milvus", "from embguard import daemon"),  # the foundation reaching up into orchestration
        ("embguard", "errors", "from embguard import config"),  # the exception tree imports nothing of embguard
    ],
)
def test_the_check_fails_when_the_direction_is_broken(tmp_path: Path, module: str, bad: str, imports: str) -> None:
    for pkg in ("embguard", "monitors", "retrain"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for name in _layer_modules():  # an empty stand-in for every module the layers name
        (tmp_path / "embguard" / f"{name}.py").write_text("")
    (tmp_path / "monitors" / "something.py").write_text("")
    (tmp_path / module / f"{bad}.py").write_text(imports + "\n")
    ini = tmp_path / ".importlinter"
    ini.write_text(_contracts_ini())
    res = _lint(tmp_path, ini)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and f"{module}.{bad}" in res.stdout


def test_the_check_fails_on_an_import_cycle_inside_a_subpackage(tmp_path: Path) -> None:
    for pkg in ("embguard", "monitors", "retrain"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for name in _layer_modules():
        (tmp_path / "embguard" / f"{name}.py").write_text("")
    (tmp_path / "embguard" / "swap.py").unlink()
    (tmp_path / "embguard" / "swap").mkdir()
    (tmp_path / "embguard" / "swap" / "__init__.py").write_text("")
    (tmp_path / "embguard" / "swap" / "swapper.py").write_text("from embguard.swap import backfill\n")
    (tmp_path / "embguard" / "swap" / "backfill.py").write_text("from embguard.swap import swapper\n")
    ini = tmp_path / ".importlinter"
    ini.write_text(_contracts_ini())
    res = _lint(tmp_path, ini)
    assert res.returncode != 0
    assert "No cycles are allowed in embguard.swap" in res.stdout, res.stdout


def test_embguard_has_few_top_level_entries_and_no_long_modules() -> None:
    """A newcomer can name every room (#24): about a dozen entries at the top (#25 added the proxy and the HTTP
    endpoints it shares with the daemon, #26 the embedding endpoint), no module past ~300 lines."""
    top = sorted(p.name for p in (REPO / "embguard").iterdir() if p.name != "__pycache__")
    assert len(top) <= 18, top
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "embguard").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 330
    }
    assert not long, f"modules over ~300 lines: {long}"


HEAVY = ("pymilvus", "sentence_transformers", "evidently", "apscheduler", "click", "onnxruntime", "openvino", "nncf")
OWNERS = {
    # The facade (milvus.py) and the wire protocol the proxy reads (wire.py: pymilvus' generated messages).
    "pymilvus": "embguard/milvus/",
    "sentence_transformers": "embguard/models/loading.py",
    "click": "embguard/cli/",
    "onnxruntime": "embguard/models/backends.py",
    "openvino": "embguard/models/backends.py",
    "nncf": "embguard/models/backends.py",
}


@pytest.mark.parametrize("dep", HEAVY)
def test_heavy_dependencies_are_imported_in_one_module_per_package(dep: str) -> None:
    for pkg in ("embguard", "monitors", "retrain"):
        users = sorted(
            str(p.relative_to(REPO))
            for p in (REPO / pkg).rglob("*.py")
            if f"import {dep}" in p.read_text() or f"from {dep}" in p.read_text()
        )
        owner = OWNERS.get(dep, "") if pkg == "embguard" else ""
        if owner.endswith("/"):  # a package owns it: its modules may import it, nothing outside may
            assert users and all(u.startswith(owner) for u in users), f"{dep} is imported by {users}"
            continue
        assert len(users) <= 1, f"{dep} is imported by {users}; keep it behind one module"
        if owner:
            assert users == [owner]


def test_no_module_re_exports_what_it_imports() -> None:
    """No re-export facades (#24): an ``__all__`` inside embguard names only what its own module defines, so every
    import names the module a thing lives in. The package's curated public API (embguard/__init__.py, and the CLI
    entry point) is the exception."""
    curated = {REPO / "embguard" / "__init__.py", REPO / "embguard" / "cli" / "__init__.py"}
    facades = {}
    for path in (REPO / "embguard").rglob("*.py"):
        if path in curated:
            continue
        tree = ast.parse(path.read_text())
        defined: set[str] = set()
        exported: list[str] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        defined.add(target.id)
                        if target.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                            exported = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
        if extra := sorted(set(exported) - defined):
            facades[str(path.relative_to(REPO))] = extra
    assert not facades, f"modules re-exporting names they import: {facades}"

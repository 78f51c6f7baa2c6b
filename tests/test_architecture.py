"""The import direction is a contract: embguard -> monitors, embguard -> retrain, never back, never across."""

from __future__ import annotations

import ast
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
    assert "Contracts: 3 kept, 0 broken" in res.stdout


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


HEAVY = ("pymilvus", "sentence_transformers", "evidently", "apscheduler", "click")
OWNERS = {"pymilvus": "embguard/milvus.py", "sentence_transformers": "embguard/model.py", "click": "embguard/cli/"}


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


def _imports_in_a_fresh_interpreter(code: str, blocked: tuple[str, ...] = ()) -> list[str]:
    """Run ``code`` in a new interpreter (``blocked`` modules made uninstallable) and list the heavy modules loaded."""
    heavy = ("torch", "apscheduler", "evidently", "click", "httpx", "datasets", "accelerate", "ray", "sklearn")
    prog = (
        f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n{code}\n"
        f"print([m for m in {heavy!r} if sys.modules.get(m) is not None])"
    )
    res = subprocess.run([sys.executable, "-c", prog], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return ast.literal_eval(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ["monitors", "retrain"])
def test_the_pure_packages_import_without_torch(package: str) -> None:
    # Both promise a cheap import (the sidecar imports them on every start); torch alone costs seconds.
    assert "torch" not in _imports_in_a_fresh_interpreter(f"import {package}")


def test_both_pure_packages_together_import_without_torch_and_resolve_their_names_lazily() -> None:
    # Issue #14: the exact check, in a fresh interpreter (this process has long since imported torch). Then the lazy
    # names are real: every public name resolves, and asking for a torch-backed one loads its module and torch.
    prog = (
        "import monitors, retrain, sys\n"
        "assert 'torch' not in sys.modules, 'import monitors, retrain pulled in torch'\n"
        "missing = [n for n in monitors.__all__ if n not in vars(monitors)]\n"
        "assert missing, 'nothing is lazy: every torch-backed name was bound at import'\n"
        "assert 'torch' not in sys.modules\n"
        "for n in monitors.__all__: getattr(monitors, n)\n"
        "assert monitors.MMDDetector.__module__ == 'monitors.mmd'\n"
        "assert 'torch' in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", prog], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# What the core install (no extras) lacks: `embguard[serve]`, `[train]`, `[evidently]`, `[ray]`.
EXTRAS_ONLY = ("apscheduler", "httpx", "datasets", "accelerate", "evidently", "ray")


def test_the_application_client_works_on_the_core_install() -> None:
    loaded = _imports_in_a_fresh_interpreter(
        "import embguard, embguard.client\nfrom embguard import Client, load_config\nassert Client and load_config",
        blocked=EXTRAS_ONLY,
    )
    # The client pulls none of the daemon's, the trainer's or the CLI's dependencies.
    assert loaded == []


def test_a_missing_extra_is_one_line_naming_the_install_command(tmp_path: Path) -> None:
    prog = (
        f"import sys\nfor m in {EXTRAS_ONLY!r}: sys.modules[m] = None\n"
        "from embguard.cli import main\nsys.argv = ['embguard', 'serve', '--once']\nmain()"
    )
    res = subprocess.run(
        [sys.executable, "-c", prog],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [
        "Error: the embguard daemon needs APScheduler, which is not installed; run: pip install 'embguard[serve]'"
    ]


def test_every_public_name_resolves_and_import_embguard_stays_cheap() -> None:
    code = "import embguard\nmissing = [n for n in embguard.__all__ if not hasattr(embguard, n)]\nassert not missing"
    assert _imports_in_a_fresh_interpreter("import embguard") == []
    _imports_in_a_fresh_interpreter(code)  # the child fails (and so this test) if a lazy name does not resolve

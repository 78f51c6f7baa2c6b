"""The import direction is a contract: embguard -> monitors, embguard -> retrain, never back, never across."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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


def test_the_proxy_runs_on_the_core_install_without_torch_or_the_daemon() -> None:
    # `embguard proxy` must start fast and survive without the daemon's stack: a Proxy is built (ports 0, nothing
    # reached) in a fresh interpreter where the extras are uninstallable.
    loaded = _imports_in_a_fresh_interpreter(
        "import asyncio\n"
        "from embguard.config import loader\n"
        "from embguard.proxy.service import Proxy\n"
        "s = loader.load(None, environ={'EMBGUARD_PROXY__PORT': '1', 'EMBGUARD_PROXY__METRICS_PORT': '1'})\n"
        "s = s.model_copy(update={'proxy': s.proxy.model_copy(update={'port': 0, 'metrics_port': 0})})\n"
        "async def main():\n"
        "    p = Proxy(s)\n"
        "    await p.start()\n"
        "    assert p.port > 0\n"
        "    await p.stop(0)\n"
        "asyncio.run(main())\n"
        "assert not any(m.startswith('embguard.daemon') for m in sys.modules)",
        blocked=EXTRAS_ONLY,
    )
    assert loaded == []

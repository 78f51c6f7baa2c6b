"""The public surface the README shows: `from embguard import Client, ...`, `python -m embguard`, cheap imports."""

from __future__ import annotations

import subprocess
import sys


def test_readme_imports_work() -> None:
    import embguard
    from embguard.client.client import Client
    from embguard.config.loader import load as load_config
    from embguard.errors import InvalidInput

    assert Client.__name__ == "Client" and issubclass(InvalidInput, embguard.EmbguardError)
    assert callable(load_config) and set(embguard.__all__) >= {"Client", "load_config", "EmbguardError"}


def test_python_dash_m_runs_the_cli() -> None:
    res = subprocess.run([sys.executable, "-m", "embguard", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("embguard"), res.stderr


def test_import_retrain_and_embguard_do_not_import_torch() -> None:
    code = "import sys, retrain, embguard, embguard.config; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stdout + res.stderr

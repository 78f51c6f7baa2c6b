"""Packaging: the wheel's PEP 561 markers, torch as a range with the exact build in constraints.txt, and the
pytest warning filters that turn our own deprecations into failures."""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OUR_PACKAGES = ("embguard", "monitors", "retrain")


def test_every_package_is_marked_typed() -> None:
    assert set(PYPROJECT["tool"]["importlinter"]["root_packages"]) == set(OUR_PACKAGES)
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package in OUR_PACKAGES:
        assert (REPO / package / "py.typed").is_file(), package
        assert "py.typed" in package_data.get(package, []), package


def _torch_pin() -> Version:
    pins = [
        Requirement(line)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    (torch,) = [r for r in pins if r.name == "torch"]
    (spec,) = torch.specifier
    assert spec.operator == "==", torch
    return Version(spec.version)


def test_torch_is_a_range_and_constraints_pin_the_build_we_test() -> None:
    (torch,) = [Requirement(d) for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name == "torch"]
    assert not any(s.operator in ("==", "===") for s in torch.specifier), f"{torch}: pin it in constraints.txt"
    pin = _torch_pin()
    assert pin in torch.specifier, f"constraints.txt pins torch {pin}, outside pyproject's {torch.specifier}"
    import torch as installed

    # `make install` installs through constraints.txt: the suite runs on the pinned build (+cpu here).
    assert Version(installed.__version__).public == str(pin), f"torch {installed.__version__}; run `make install`"


def test_every_install_step_uses_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert stamp is not None and "constraints.txt" in stamp.group(1).split(), "the install reruns when it changes"
    installs = [line for line in stamp.group(2).splitlines() if re.search(r"pip install\b(?!.*--upgrade pip)", line)]
    assert any("torch" in line for line in installs) and any(".[all,test]" in line for line in installs)
    for line in installs:
        assert "-c constraints.txt" in line, line
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY constraints\.txt ", dockerfile, re.M)
    runs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert len(runs) >= 2 and all("-c constraints.txt" in line for line in runs), runs
    assert "make test" in (REPO / ".ci" / "run").read_text()  # CI installs through the Makefile


# The filters are the ones pytest applies around every test (pyproject's filterwarnings): each case warns from
# code whose module is the given name, exactly as `warnings.warn` attributes a warning to its caller's module.
def _warn_from(module: str, category: type[Warning]) -> None:
    code = f"import warnings\nwarnings.warn('old API', {category.__name__})\n"
    exec(compile(code, f"<{module}>", "exec"), {"__name__": module})


def _call_from(module: str, func: object) -> None:
    exec(compile("func()\n", f"<{module}>", "exec"), {"__name__": module, "func": func})


@pytest.mark.parametrize("module", ["embguard", "embguard.checks.monitor", "monitors.mmd", "retrain.finetune"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_raised_in_our_packages_fails_the_test(module: str, category: type[Warning]) -> None:
    with pytest.raises(category, match="old API"):
        _warn_from(module, category)


@pytest.mark.parametrize("module", ["torch.nn", "transformers", "embguardx", "monitorsx.y", "tests.test_x", "__main__"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_third_party_deprecation_is_ignored(module: str, category: type[Warning]) -> None:
    with warnings.catch_warnings(record=True) as seen:  # keeps pytest's filters; records what they let through
        _warn_from(module, category)
    assert seen == []


def test_our_call_of_a_deprecated_third_party_api_fails_the_test() -> None:
    # A deprecated API warns with stacklevel=2: the warning is its caller's. Called from our code, that is ours
    # to fix; the same call made inside the third-party library itself is not.
    somelib: dict[str, object] = {"__name__": "somelib.api"}
    code = "import warnings\ndef old():\n    warnings.warn('old API', DeprecationWarning, stacklevel=2)\n"
    exec(compile(code, "<somelib.api>", "exec"), somelib)

    with pytest.raises(DeprecationWarning, match="old API"):
        _call_from("retrain.finetune", somelib["old"])
    with warnings.catch_warnings(record=True) as seen:
        _call_from("somelib.internal", somelib["old"])
    assert seen == []

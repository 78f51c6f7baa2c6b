"""Small typed objects the tests build by hand, and ``wait_until`` (imported as ``from builders import ...``, like
``backends``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from embguard.config import loader as config
from embguard.config.settings import Settings
from embguard.milvus.lite import free_port
from retrain import GateConfig, GateVerdict
from retrain.bootstrap import Interval

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05, what: str = "") -> T:
    """Call ``predicate`` every ``interval_s`` until it returns something truthy, and return that; after
    ``timeout_s`` fail the test naming ``what`` (or the predicate) and the last value seen. An exception from the
    predicate (an assertion that a process is still alive) propagates at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {name}; last value: {value!r:.300}")
        time.sleep(interval_s)


def gate_verdict(base: float = 0.5, candidate: float = 0.56, reason: str = "gain") -> GateVerdict:
    """A passing gate verdict with the given means, as the registry stores one."""
    gain = Interval(mean=candidate - base, low=0.01, high=0.1, confidence=0.95, resamples=2000, n=40)
    return GateVerdict(
        promote=True,
        reasons=(reason,),
        metric="ndcg@10",
        base_mean=base,
        candidate_mean=candidate,
        gain=gain,
        guard_base_mean=None,
        guard_candidate_mean=None,
        guard_change=None,
        means={},
        config=GateConfig(),
    )


def settings_env(tmp: Path, port: int | None = None, **env: str) -> dict[str, str]:
    """The EMBGUARD_* environment of a test: everything under ``tmp``, on a free loopback port."""
    base = {
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(port or free_port()),
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
    }
    base.update(env)
    return base


def make_settings(tmp: Path, port: int | None = None, **env: str) -> Settings:
    return config.load(None, environ=settings_env(tmp, port, **env))


def run_demo(tmp_path: Path, *args: str) -> tuple[str, dict[str, str]]:
    """`embguard demo ARGS` as a new user runs it (nothing but PATH and HOME, state under ``tmp_path``): its output
    and its closing summary's fields by name. Fails with the output's tail if the demo did not exit 0."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EMBGUARD_STATE__DIR": str(tmp_path / "state")}
    res = subprocess.run(
        [sys.executable, "-m", "embguard.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
        env=env,
    )
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    summary = out.split("\nsummary\n", 1)[1]
    field = {m.group(1).strip(): m.group(2) for m in re.finditer(r"^  (\S[^\n]*?)  +(\S[^\n]*)$", summary, re.M)}
    return out, field

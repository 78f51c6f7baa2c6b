"""Joining a Ray cluster for the swap's backfill, or starting a local head that dies with the driver.

The ``ray`` module is passed in by :mod:`embguard.swap.ray_backfill`, the one module that imports it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

from embguard.config.settings import Settings
from embguard.errors import SwapError

# Runs in a fresh interpreter: starts a local Ray head, prints its address, and lives until its parent (the
# swap's driver) is gone, so the head dies with the driver even after a kill -9.
_HEAD = """
import logging, os, time, ray
parent = os.getppid()
ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
print(ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_MODE", ""), flush=True)
while os.getppid() == parent:
    time.sleep(0.5)
"""


def connect(ray: Any, address: str) -> subprocess.Popen[str] | None:
    """Join Ray at ``address``, or start a local head; returns the head's process when this call started it.

    The head is started by a child interpreter, not by ``ray.init`` here: ``ray.init`` forks its head
    processes from this (threaded) process with a Python ``preexec_fn``, which can deadlock in the child.
    """
    if ray.is_initialized():
        return None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    head = None
    try:
        if not address:
            head = subprocess.Popen(
                [sys.executable, "-c", _HEAD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            address, _, auth = (head.stdout.readline() if head.stdout else "").strip().partition(" ")
            if not address:
                raise RuntimeError(f"the local Ray head exited with code {head.wait()} before it started")
            if auth:  # a new local head turns on token auth; a client must ask for it too
                os.environ.setdefault("RAY_AUTH_MODE", auth)
        ray.init(address=address, **kwargs)
        return head
    except (ConnectionError, RuntimeError, ValueError) as exc:
        stop(head)
        raise SwapError(
            f"cannot reach the Ray cluster at swap.ray_address={address!r}: {exc}; start it "
            "(`ray start --head`), fix the address, or leave it empty to start a local Ray"
        ) from None


def stop(head: subprocess.Popen[str] | None) -> None:
    if head is not None and head.poll() is None:
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()


def workers(ray: Any, settings: Settings) -> tuple[int, dict[str, Any]]:
    """How many encoder actors, and the resources each asks for."""
    res = ray.cluster_resources()
    if settings.model.device == "cuda":
        gpus = int(res.get("GPU", 0))
        if gpus < 1:
            raise SwapError(
                "model.device = 'cuda' but the Ray cluster has no GPU; add GPU nodes or set model.device = 'cpu'"
            )
        n = settings.swap.ray_workers or gpus
        return n, {"num_gpus": 1, "num_cpus": 1}
    cpus = max(int(res.get("CPU", 1)), 1)
    n = settings.swap.ray_workers or cpus
    return n, {"num_cpus": max(cpus // n, 1)}

"""The daemon's clock: the one module that imports APScheduler.

Jobs run on intervals; APScheduler never runs a job alongside itself (``max_instances=1``) and folds missed
runs into one (``coalesce``). Stopping gives running jobs a bounded time to finish, then abandons them (they
hold no partial state).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

try:
    from apscheduler.schedulers.background import BackgroundScheduler
except ModuleNotFoundError as exc:  # the core install is the application-side client only
    raise ModuleNotFoundError(
        "the embguard daemon needs APScheduler, which is not installed; run: pip install 'embguard[serve]'",
        name=exc.name,
    ) from exc

log = logging.getLogger("embguard.daemon")


def start_jobs(
    run: Callable[[str, Callable[[], None]], None], jobs: Mapping[str, tuple[Callable[[], None], float]]
) -> Any:
    """A started scheduler running ``run(name, fn)`` every ``seconds`` for each ``name: (fn, seconds)``, the first
    run right away."""
    sched = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30})
    for name, (fn, every) in jobs.items():
        sched.add_job(
            run,
            "interval",
            args=(name, fn),
            seconds=every,
            id=name,
            name=name,
            next_run_time=datetime.now(UTC) + timedelta(seconds=0.2),
        )  # None would add the job paused
    sched.start()
    return sched


def stop_jobs(sched: Any, timeout_s: float) -> None:
    """Shut ``sched`` down, waiting at most ``timeout_s`` for running jobs."""
    done = threading.Event()

    def shutdown() -> None:
        sched.shutdown(wait=True)
        done.set()

    threading.Thread(target=shutdown, daemon=True).start()
    if not done.wait(timeout_s):
        log.warning("jobs still running after %.0f s; abandoning them (they hold no partial state)", timeout_s)


def running(sched: Any) -> bool:
    return sched is not None and bool(sched.running)

"""Child-process entry point: ``python -m retrain.worker JOB_DIR``.

Reads ``JOB_DIR/job.json`` ({"config": ..., "data": ...}), trains into ``JOB_DIR/model`` and prints one
``PROGRESS {json}`` line per step for the parent. Exit code 0 only when the model is fully saved.

Test hook: ``RETRAIN_WORKER_FAIL_AT_STEP=N`` makes the run die at the end of training step N (before that
step's checkpoint is written), so tests can exercise crash handling and resume without corrupting real inputs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

FAIL_ENV = "RETRAIN_WORKER_FAIL_AT_STEP"


def _exit_with_parent(poll_s: float = 2.0) -> None:
    # If the caller dies (killed daemon), an orphaned trainer would burn CPU for nothing: stop too.
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(4)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m retrain.worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[0])
    _exit_with_parent()
    job = json.loads((job_dir / "job.json").read_text())
    from .config import TrainConfig, TrainData
    from .finetune import Progress, train

    fail_at = int(os.environ.get(FAIL_ENV, "0") or 0)

    first = os.environ.get("RANK", "0") == "0"  # under torchrun, one process speaks for all

    def report(p: Progress) -> None:
        if first:
            print("PROGRESS " + json.dumps(asdict(p)), flush=True)
        if fail_at and p.stage == "train" and p.step >= fail_at:
            print(f"injected failure at step {p.step} ({FAIL_ENV}={fail_at})", file=sys.stderr, flush=True)
            os._exit(3)  # a hard death, like an OOM kill: no cleanup, no exception handlers

    train(TrainConfig.from_dict(job["config"]), TrainData.from_dict(job["data"]), job_dir / "model", report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

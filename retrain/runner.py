"""Run training in a child process and publish the model atomically.

The child (``python -m retrain.worker``) writes into a private job directory next to ``out_dir``; only on
exit code 0 is the model directory renamed into place (one ``os.rename`` on the same filesystem), so
``out_dir`` is either absent or complete. A crash, OOM kill or timeout in the child cannot take the caller
down, and the base model is only ever read.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import RESULT_FILE, TrainConfig, TrainData, TrainResult, write_json
from .errors import ConfigError, TrainingFailed

ProgressFn = Callable[[dict[str, Any]], None]
_PKG_PARENT = str(Path(__file__).resolve().parents[1])


def default_checkpoint_dir(out_dir: str | Path) -> Path:
    """Checkpoints live beside the output (``<out_dir>.checkpoints``) so they survive a failed run."""
    out = Path(out_dir)
    return out.with_name(out.name + ".checkpoints")


def worker_command(config: TrainConfig, job: Path, python: str = sys.executable) -> list[str]:
    """The child's command line: the worker itself, or torchrun starting one worker per device.

    torchrun's ``--standalone`` rendezvous picks a free local port, so concurrent trainings never collide."""
    worker = ["-m", "retrain.worker", str(job)]
    if config.processes == 1:
        return [python, *worker]
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.processes}", *worker]


def run_training_subprocess(
    config: TrainConfig,
    data: TrainData,
    out_dir: str | Path,
    *,
    timeout_s: float | None = None,
    progress: ProgressFn | None = None,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    log_lines: int = 40,
) -> TrainResult:
    """Train ``config`` on ``data`` in a child process; on success ``out_dir`` holds the model.

    ``progress`` (called from a reader thread; exceptions it raises are logged, not propagated) receives
    dicts ``{stage, step, total_steps, loss, epoch}`` as the child reports them.
    Raises ``TrainingFailed`` (exit code + log tail) on any failure, leaving ``out_dir`` absent. Checkpoints
    go to ``config.checkpoint_dir`` (default ``<out_dir>.checkpoints``), so rerunning the same call resumes;
    they are deleted after a success.
    """
    out = Path(out_dir).resolve()
    if out.exists():
        raise ConfigError(
            f"output directory {str(out)!r} already exists; training never overwrites a model: "
            "pick a new directory (e.g. a new registry version)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.job-*"):
        # Left by a caller that was killed mid-run (its finally never ran); never a live model.
        shutil.rmtree(stale, ignore_errors=True)
    ckpt = Path(config.checkpoint_dir) if config.checkpoint_dir else default_checkpoint_dir(out)
    config = replace(config, checkpoint_dir=str(ckpt))
    job = Path(tempfile.mkdtemp(prefix=f".{out.name}.job-", dir=out.parent))
    tail: collections.deque[str] = collections.deque(maxlen=log_lines)
    try:
        (job / "job.json").write_text(json.dumps({"config": config.to_dict(), "data": data.to_dict()}))
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PKG_PARENT, child_env.get("PYTHONPATH")]))
        child_env.setdefault("HF_HUB_OFFLINE", "1")
        with (
            open(job / "train.log", "w") as log,
            subprocess.Popen(
                worker_command(config, job, python),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=child_env,
                cwd=str(job),
            ) as proc,
        ):

            def pump() -> None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    if line.startswith("PROGRESS "):
                        if progress is not None:
                            try:
                                progress(json.loads(line[9:]))
                            except Exception as exc:
                                # A failing callback must not stop the reader: the child would block on
                                # a full pipe and the training would hang.
                                tail.append(f"[runner] progress callback failed: {exc!r}")
                    else:
                        tail.append(line.rstrip("\n"))

            # A reader thread, so the timeout applies even while the child prints nothing.
            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                reader.join(5)
                raise TrainingFailed(
                    f"training of {config.base_model!r} into {str(out)!r} exceeded "
                    f"timeout_s={timeout_s}; raise the timeout or reduce epochs",
                    exit_code=None,
                    log_tail="\n".join(tail),
                ) from None
            reader.join()
        model = job / "model"
        if rc != 0 or not (model / RESULT_FILE).is_file():
            raise TrainingFailed(
                f"training of {config.base_model!r} into {str(out)!r} failed with exit code {rc}; "
                f"nothing was written. Checkpoints (if any) in {str(ckpt)!r} let a rerun resume",
                exit_code=rc,
                log_tail="\n".join(tail),
            )
        os.rename(model, out)
        result = replace(TrainResult.from_dict(json.loads((out / RESULT_FILE).read_text())), model_dir=str(out))
        # The child recorded its private job path; the published directory is the one that matters.
        write_json(out / RESULT_FILE, result.to_dict())
        shutil.rmtree(ckpt, ignore_errors=True)
        return result
    finally:
        shutil.rmtree(job, ignore_errors=True)

"""Data-parallel training: two processes on the gloo backend (the CPU stand-in for one process per GPU).

What makes it real and not two copies of one run: each optimiser step consumes ``processes * batch_size``
pairs (so an epoch takes half the steps), MNRL's in-batch negatives are gathered across the processes, and
exactly one process writes the model, which the runner publishes atomically as for a single process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import retrain
from retrain import TrainConfig, TrainData
from retrain.runner import worker_command

pytestmark = pytest.mark.integration  # starts torchrun with two training processes (~1 min on 2 cores)

PAIRS = tuple(
    retrain.Pair(f"how do I configure option {i}", f"option {i} is set in the settings file, section {i}")
    for i in range(32)
)


def test_the_worker_command_starts_one_process_per_device(tmp_path: Path) -> None:
    one = worker_command(TrainConfig(base_model="m"), tmp_path, "py")
    assert one == ["py", "-m", "retrain.worker", str(tmp_path)]
    two = worker_command(TrainConfig(base_model="m", processes=2), tmp_path, "py")
    assert two[:3] == ["py", "-m", "torch.distributed.run"] and "--nproc_per_node=2" in two
    assert two[-3:] == ["-m", "retrain.worker", str(tmp_path)]
    with pytest.raises(retrain.ConfigError, match="processes=0"):
        TrainConfig(base_model="m", processes=0)


@pytest.mark.parametrize("loss", ["mnrl", "cached_mnrl"])
def test_two_processes_split_each_epoch_and_publish_one_model(tiny_model: Path, tmp_path: Path, loss: str) -> None:
    cfg = dict(
        base_model=str(tiny_model),
        loss=loss,
        epochs=1.0,
        batch_size=4,
        mini_batch_size=2,
        learning_rate=1e-3,
        warmup=0.0,
        max_seq_length=32,
    )
    progress: list[dict] = []
    one = retrain.run_training_subprocess(TrainConfig(**cfg), TrainData(PAIRS), tmp_path / "one", timeout_s=600)
    two = retrain.run_training_subprocess(
        TrainConfig(**cfg, processes=2), TrainData(PAIRS), tmp_path / "two", timeout_s=600, progress=progress.append
    )
    assert (one.steps, one.processes) == (8, 1)  # 32 pairs / 4 per step
    assert (two.steps, two.processes) == (4, 2)  # 32 pairs / (2 processes x 4 per step)
    assert [p["step"] for p in progress if p["stage"] == "train"] == [1, 2, 3, 4]  # one process reports
    assert not list(tmp_path.glob(".two.job-*")) and not (tmp_path / "two.checkpoints").exists()
    texts = [p.query for p in PAIRS[:4]]
    base, trained = retrain.encode(tiny_model, texts), retrain.encode(tmp_path / "two", texts)
    assert trained.shape == base.shape and np.allclose(np.linalg.norm(trained, axis=1), 1, atol=1e-4)
    assert not np.allclose(trained, base, atol=1e-4)  # the published weights were trained

"""Training with a tiny locally-built model: weights move, seeds repeat, crashes leave nothing, resume works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrain import ConfigError, Pair, TrainConfig, TrainData, TrainingFailed, run_training_subprocess

PAIRS = tuple(
    Pair(query=f"how do I {verb} a {noun}", positive=f"use {verb}_{noun}() to {verb} the {noun} quickly")
    for verb in ("open", "close", "sort", "parse", "copy", "hash")
    for noun in ("file", "list", "socket", "string", "path")
)


def weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    files = list(model_dir.rglob("model.safetensors"))
    assert files, f"no safetensors in {model_dir}"
    return load_file(str(files[0]))


def cfg(model: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        base_model=str(model), batch_size=8, learning_rate=1e-3, max_steps=4, max_seq_length=32
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_timeout_kills_the_child_and_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailed, match="timeout_s=0.5") as exc:
        run_training_subprocess(cfg(tiny_model), TrainData(PAIRS), tmp_path / "out", timeout_s=0.5)
    assert exc.value.exit_code is None and list(tmp_path.iterdir()) == []


def test_config_errors_name_field_and_fix(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="teacher_model"):
        TrainConfig(base_model=str(tiny_model), loss="margin_mse")
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(base_model=str(tiny_model), loss="triplet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown"):
        TrainConfig.from_dict({"base_model": "x", "lr": 1})
    c = cfg(tiny_model, matryoshka_dims=(16,))
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c

"""Training with a tiny locally-built model: weights move, seeds repeat, crashes leave nothing, resume works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import retrain


def weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    files = list(model_dir.rglob("model.safetensors"))
    assert files, f"no safetensors in {model_dir}"
    return load_file(str(files[0]))


def test_missing_model_is_a_model_dir_error(tmp_path: Path) -> None:
    from retrain.finetune import load_model

    with pytest.raises(retrain.ModelDirError, match="missing"):
        load_model(tmp_path / "missing")

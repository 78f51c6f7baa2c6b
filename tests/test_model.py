from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embguard import model
from embguard.errors import ModelNotFound


def test_default_model_loads_offline_with_a_stable_id(embedder) -> None:
    assert embedder.name == "all-MiniLM-L6-v2" and embedder.dimension == 384
    assert embedder.model_id.startswith("all-MiniLM-L6-v2@") and len(embedder.model_id.split("@")[1]) == 12
    assert model.content_hash(embedder.path) == embedder.model_id.split("@")[1]
    for alias in ("default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert model.resolve(alias)[1] == embedder.path
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_encode_is_normalised_and_rejects_a_bare_string(embedder) -> None:
    v = embedder.encode(["a cat on a mat", "quarterly earnings fell"])
    assert v.dtype == np.float32 and v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="wrap it in a list"):
        embedder.encode("one string")


def test_hub_id_not_on_disk_is_a_clear_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"'BAAI/bge-small-en' is not on disk.*never downloads"):
        model.load("BAAI/bge-small-en", store_dir=tmp_path)


def test_id_follows_content_and_registry_dirs_resolve(tmp_path: Path, embedder) -> None:
    copy = tmp_path / "store" / "v2"
    shutil.copytree(embedder.path, copy)
    (copy / "README.md").write_text("a model card does not change vectors")
    assert model.content_hash(copy) == model.content_hash(embedder.path)
    assert model.resolve("v2", store_dir=tmp_path / "store") == ("v2", copy.resolve())
    cfg = copy / "sentence_bert_config.json"
    cfg.write_text(cfg.read_text().replace("256", "128"))
    assert model.content_hash(copy) != model.content_hash(embedder.path)

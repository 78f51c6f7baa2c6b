from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from embguard.models import loading as model


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


def test_id_follows_content_and_registry_dirs_resolve(tmp_path: Path, embedder) -> None:
    copy = tmp_path / "store" / "v2"
    shutil.copytree(embedder.path, copy)
    (copy / "README.md").write_text("a model card does not change vectors")
    assert model.content_hash(copy) == model.content_hash(embedder.path)
    assert model.resolve("v2", store_dir=tmp_path / "store") == ("v2", copy.resolve())
    cfg = copy / "sentence_bert_config.json"
    cfg.write_text(cfg.read_text().replace("256", "128"))
    assert model.content_hash(copy) != model.content_hash(embedder.path)


QUIET_LOAD = """
import sys
from transformers.utils import logging as hf_logging
from embguard.models import loading as model
m = model.load("default")
m.encode(["a cat on a mat"] * 3)
m.encode_queries(["where is the cat"])
print("bars restored:", hf_logging.is_progress_bar_enabled())
"""


@pytest.mark.integration
def test_loading_and_encoding_print_no_progress_bars() -> None:
    """A real load + encode in a fresh process (no model cache): nothing like transformers' "Loading weights"
    bar on stderr, and transformers' own progress-bar setting is back as it was once the load returned."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", QUIET_LOAD], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "bars restored: True" in res.stdout
    for bar in ("Loading weights", "it/s]", "s/it]", "Batches"):
        assert bar not in res.stderr, res.stderr
    assert not re.search(r"\d+%\|", res.stderr), res.stderr  # any tqdm bar

"""Training with a tiny locally-built model: weights move, seeds repeat, crashes leave nothing, resume works."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import retrain
from retrain import ConfigError, Pair, TrainConfig, TrainData, TrainingFailed, run_training_subprocess
from retrain.worker import FAIL_ENV

PAIRS = tuple(
    Pair(query=f"how do I {verb} a {noun}", positive=f"use {verb}_{noun}() to {verb} the {noun} quickly")
    for verb in ("open", "close", "sort", "parse", "copy", "hash")
    for noun in ("file", "list", "socket", "string", "path")
)


def tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


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


@pytest.fixture(scope="module")
def straight(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[retrain.TrainResult, Path]:
    """An uninterrupted 4-step in-process run: the reference for determinism and resume."""
    out = tmp_path_factory.mktemp("straight") / "m"
    return retrain.train(cfg(tiny_model), TrainData(PAIRS), out), out


@pytest.mark.integration  # two real (tiny-model) training runs, ~7 s: not the fast tier
def test_training_changes_weights_is_seeded_and_never_touches_the_base(
    tiny_model: Path, tmp_path: Path, straight: tuple[retrain.TrainResult, Path]
) -> None:
    before = tree_hash(tiny_model)
    res, a = straight
    retrain.train(cfg(tiny_model), TrainData(PAIRS), tmp_path / "b")
    assert tree_hash(tiny_model) == before
    w0, w1, w2 = weights(tiny_model), weights(a), weights(tmp_path / "b")
    changed = [k for k in w0 if not np.allclose(w0[k], w1[k])]
    assert len(changed) > len(w0) // 2, f"only {changed} changed"
    assert all(np.array_equal(w1[k], w2[k]) for k in w1), "same seed must give the same weights"
    assert res.steps == 4 and len(res.losses) == 4
    saved = json.loads((a / retrain.RESULT_FILE).read_text())
    assert saved["steps"] == 4 and saved["config"]["loss"] == "mnrl"


@pytest.mark.slow
@pytest.mark.integration  # two training children (~10 s): not the fast tier
def test_crash_leaves_nothing_then_rerun_resumes_and_publishes_atomically(
    tiny_model: Path, tmp_path: Path, straight: tuple[retrain.TrainResult, Path]
) -> None:
    before = tree_hash(tiny_model)
    out = tmp_path / "models" / "v2"
    c = cfg(tiny_model, save_steps=2)
    with pytest.raises(TrainingFailed) as exc:
        run_training_subprocess(c, TrainData(PAIRS), out, env={**os.environ, FAIL_ENV: "3"})
    assert exc.value.exit_code == 3 and "injected failure" in exc.value.log_tail
    assert not out.exists() and tree_hash(tiny_model) == before
    ckpt = retrain.runner.default_checkpoint_dir(out)
    assert sorted(p.name for p in out.parent.iterdir()) == [ckpt.name]  # no job dir, no partial model
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint-2"]

    events: list[dict] = []
    res = run_training_subprocess(c, TrainData(PAIRS), out, progress=events.append)
    assert res.resumed_from is not None and res.resumed_from.endswith("checkpoint-2")
    assert [e["step"] for e in events] == [3, 4] and all(e["total_steps"] == 4 for e in events)
    assert res.steps == 4 and res.model_dir == str(out.resolve()) and (out / "modules.json").is_file()
    assert json.loads((out / retrain.RESULT_FILE).read_text())["model_dir"] == str(out.resolve())
    assert sorted(p.name for p in out.parent.iterdir()) == ["v2"]  # checkpoints and job dirs cleaned up
    assert tree_hash(tiny_model) == before
    # The resumed run ends where the uninterrupted one does.
    w_res, w_straight = weights(out), weights(straight[1])
    assert all(np.allclose(w_res[k], w_straight[k], atol=1e-5) for k in w_res)
    with pytest.raises(ConfigError, match="already exists"):
        run_training_subprocess(c, TrainData(PAIRS), out)


@pytest.mark.integration  # a training child that loads sentence-transformers (~8 s): not the fast tier
def test_corrupt_model_fails_cleanly_in_the_child(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    before = tree_hash(broken)
    (tmp_path / ".out.job-stale").mkdir()  # left by a caller killed mid-run: cleaned up by the next run
    with pytest.raises(TrainingFailed) as exc:
        run_training_subprocess(cfg(broken), TrainData(PAIRS), tmp_path / "out")
    assert exc.value.exit_code not in (0, None) and "ModelDirError" in exc.value.log_tail
    assert "broken" in str(exc.value)
    assert not (tmp_path / "out").exists() and tree_hash(broken) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


@pytest.mark.integration  # a real training run per variant (~3 s each): not the fast tier
@pytest.mark.parametrize(
    "extra",
    [
        dict(loss="cached_mnrl", mini_batch_size=4),
        dict(matryoshka_dims=(32, 16)),
        dict(anchor_weight=0.5, task_weight=1.0),
    ],
)
def test_loss_variants_train(tiny_model: Path, tmp_path: Path, extra: dict) -> None:
    anchors = tuple(
        Pair(query=f"what is {w}", positive=f"{w} is a common english word")
        for w in ("apple", "river", "music", "house", "green", "winter", "bread", "light")
    )
    res = retrain.train(cfg(tiny_model, max_steps=2, **extra), TrainData(PAIRS, anchor_pairs=anchors), tmp_path / "m")
    assert res.steps == 2 and res.final_loss is not None and np.isfinite(res.final_loss)


@pytest.mark.integration  # real training with a teacher (~2 s): not the fast tier
def test_margin_mse_distils_from_a_local_teacher(tiny_model: Path, tmp_path: Path) -> None:
    triplets = tuple(
        Pair(query=p.query, positive=p.positive, negative=PAIRS[(i + 7) % len(PAIRS)].positive)
        for i, p in enumerate(PAIRS)
    )
    res = retrain.train(
        cfg(tiny_model, loss="margin_mse", teacher_model=str(tiny_model), max_steps=2),
        TrainData(triplets),
        tmp_path / "m",
    )
    assert res.steps == 2
    with pytest.raises(retrain.DataError, match="triplets"):
        retrain.train(
            cfg(tiny_model, loss="margin_mse", teacher_model=str(tiny_model)), TrainData(PAIRS), tmp_path / "m2"
        )


@pytest.mark.integration  # TSDAE then contrastive training (~8 s): not the fast tier
def test_tsdae_domain_adaptation_runs_offline_before_the_contrastive_step(tiny_model: Path, tmp_path: Path) -> None:
    docs = tuple(p.positive + " and more words about the standard library" for p in PAIRS)
    res = retrain.train(
        cfg(tiny_model, tsdae_epochs=1.0, tsdae_batch_size=8), TrainData(PAIRS, documents=docs), tmp_path / "m"
    )
    assert res.tsdae_steps == 4 and res.steps == 4

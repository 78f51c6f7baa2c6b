"""Test data for the monitors tests: synthetic unit-vector mixtures and cached real sentence embeddings.

Real embeddings of the stdlib corpus are cached on disk (keyed by model id and corpus hash).

Encoding all passages takes about a minute on 2 cores; the cache makes reruns take well under a second.
Tests may import embguard (only the monitors package may not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from scipy.stats import binomtest

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".cache" / "monitors"


def unit_mixture(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 0.35) -> np.ndarray:
    """Rows near random cluster centres, L2-normalised: a cheap stand-in for sentence embeddings."""
    which = rng.integers(0, len(centres), n)
    x = centres[which] + spread * rng.standard_normal((n, centres.shape[1])) / np.sqrt(centres.shape[1])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def assert_rate_is(k: int, n: int, alpha: float) -> None:
    """``k`` alarms in ``n`` independent trials: the 99% Clopper-Pearson interval of the rate must contain alpha."""
    ci = binomtest(k, n).proportion_ci(confidence_level=0.99, method="exact")
    assert ci.low <= alpha <= ci.high, f"{k}/{n} false alarms: 99% CI [{ci.low:.4f}, {ci.high:.4f}] excludes {alpha}"


@dataclass(frozen=True)
class RealEmbeddings:
    ids: np.ndarray  # int64 passage ids
    topics: np.ndarray  # str topic per passage
    text: np.ndarray  # (n, 384) float32, L2-normalised passage-text embeddings
    query: np.ndarray  # (n, 384) float32, L2-normalised query (summary line) embeddings
    model_id: str


def load_real_embeddings() -> RealEmbeddings:
    from embguard.models.loading import content_hash, resolve
    from embguard.training.stdlib_corpus import stdlib_corpus

    passages = stdlib_corpus()
    digest = hashlib.sha256()
    for p in passages:
        digest.update(f"{p.id}\x1f{p.topic}\x1f{p.query}\x1f{p.text}\x1e".encode())
    # The model id is a hash of the weight files; computing it does not need the (slow) model load.
    name, model_dir = resolve("default")
    model_id = f"{name}@{content_hash(model_dir)}"
    key = hashlib.sha256(f"{model_id}|{digest.hexdigest()}".encode()).hexdigest()[:16]
    path = CACHE_DIR / f"stdlib-{key}.npz"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Parallel test workers (xdist) wait for the first one's encode instead of each encoding the corpus.
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            z = np.load(path, allow_pickle=False)
            return RealEmbeddings(z["ids"], z["topics"], z["text"], z["query"], str(z["model_id"]))
        return _encode_and_cache(passages, path)


def _encode_and_cache(passages, path: Path) -> RealEmbeddings:
    from embguard.models.loading import load

    model = load()
    text = model.encode([p.text for p in passages])
    query = model.encode([p.query for p in passages])
    ids = np.array([p.id for p in passages], dtype=np.int64)
    topics = np.array([p.topic for p in passages])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=ids, topics=topics, text=text, query=query, model_id=np.array(model.model_id))
    tmp.replace(path)
    return RealEmbeddings(ids, topics, text, query, model.model_id)


if __name__ == "__main__":
    r = load_real_embeddings()
    print(r.text.shape, r.query.shape, len(set(r.topics.tolist())), r.model_id)

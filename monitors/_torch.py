"""Small torch helpers: thread count and chunked nearest-neighbour search on unit vectors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# Rows of the query block per matmul: bounds the (chunk x n_base) similarity block to ~ 80 MB at n_base=10k.
_CHUNK = 2048


# Below this many pooled rows a check takes milliseconds, and a second torch thread costs more in
# synchronisation than it saves; on a busy host (the sidecar shares cores) it was 30x slower than one thread.
SMALL_ROWS = 2000


@contextmanager
def torch_threads(threads: int | None, rows: int) -> Iterator[None]:
    """Run a block with ``threads`` torch threads (None: 1 for small problems, else torch's setting)."""
    want = threads if threads else (1 if rows <= SMALL_ROWS else None)
    prev = torch.get_num_threads()
    if want is None or want == prev:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows; zero rows stay zero (they have no direction to compare)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def _writable(x: np.ndarray) -> np.ndarray:
    # torch warns on read-only arrays (results expose read-only views); a copy is cheap next to the matmul.
    out = np.ascontiguousarray(x, dtype=np.float32)
    return out if out.flags.writeable else out.copy()


def nearest_others(queries: np.ndarray, base: np.ndarray, k: int, own_rows: np.ndarray) -> np.ndarray:
    """Each query's ``k`` nearest ``base`` rows (cosine, unit rows) other than its own row ``own_rows[i]`` in
    ``base``: the own row is dropped wherever an exact duplicate put it, else the last hit is."""
    _, idx = topk_cosine(queries, base, k + 1)
    own = idx == np.asarray(own_rows)[:, None]
    own[:, -1] |= ~own.any(axis=1)
    out: np.ndarray = idx[~own].reshape(len(queries), k)
    return out


def topk_cosine(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine similarities and indices of each query among ``base`` (both already unit rows)."""
    q = torch.from_numpy(_writable(queries))
    b = torch.from_numpy(_writable(base))
    sims, idx = [], []
    with torch.no_grad(), torch_threads(None, q.shape[0] + b.shape[0]):
        for start in range(0, q.shape[0], _CHUNK):
            s, i = torch.topk(q[start : start + _CHUNK] @ b.T, k, dim=1)
            sims.append(s)
            idx.append(i)
    return torch.cat(sims).numpy(), torch.cat(idx).numpy()

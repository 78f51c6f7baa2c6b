"""Vector index types: which ones Milvus Lite can build, and the parameters a real server insists on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Accepted by Lite at create time, then fail in its background build: refuse them before that.
LITE_UNSUPPORTED_INDEXES = frozenset(
    {"IVF_PQ", "DISKANN", "SCANN", "GPU_CAGRA", "GPU_IVF_FLAT", "GPU_IVF_PQ", "GPU_BRUTE_FORCE"}
)
LITE_SUPPORTED_INDEXES = ("FLAT", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX")
_DEFAULT_INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "HNSW_SQ": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
    "IVF_PQ": {"nlist": 128},  # plus m, which must divide the dimension: see _index_params
}


def index_params(index_type: str, dimension: int, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults a real server insists on (Lite fills its own): IVF indexes need ``nlist``, IVF_PQ an ``m``
    that divides the dimension (about 8 dimensions per sub-quantizer)."""
    params = dict(_DEFAULT_INDEX_PARAMS.get(index_type.upper(), {}))
    if index_type.upper() == "IVF_PQ":
        params["m"] = max(m for m in range(1, max(dimension // 8, 1) + 1) if dimension % m == 0)
    params.update(overrides)
    return params

"""Input checks shared by every detector, so each one fails the same clear way instead of returning a number."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import MonitorInputError, NotFittedError

_MAX_LISTED = 10


def _listing(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:_MAX_LISTED])
    return f"[{shown}{', ...' if idx.size > _MAX_LISTED else ''}]"


def as_matrix(x: Any, name: str, *, min_rows: int = 10, dim: int | None = None, dtype: type = np.float32) -> np.ndarray:
    """Return ``x`` as a C-contiguous 2-D finite float array or raise ``MonitorInputError`` saying why."""
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise MonitorInputError(
            f"{name}: could not convert {type(x).__name__} to an array ({exc}); "
            "pass a 2-D numpy array of shape (rows, dimension)"
        ) from exc
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MonitorInputError(
            f"{name}: dtype {arr.dtype} is not a real number type; pass a float32 or float64 array of embeddings"
        )
    if arr.ndim != 2:
        hint = " (one vector? use x.reshape(1, -1), but a window needs many rows)" if arr.ndim == 1 else ""
        raise MonitorInputError(
            f"{name}: expected a 2-D array of shape (rows, dimension), got shape {arr.shape}"
            f"{hint}; stack the window's vectors into a matrix"
        )
    if arr.shape[1] == 0:
        raise MonitorInputError(f"{name}: shape {arr.shape} has zero columns; pass vectors with dimension > 0")
    if arr.shape[0] < min_rows:
        raise MonitorInputError(
            f"{name}: {arr.shape[0]} rows, need at least {min_rows} (min_rows={min_rows}); "
            "collect a larger window or construct the detector with a smaller min_rows"
        )
    if dim is not None and arr.shape[1] != dim:
        raise MonitorInputError(
            f"{name}: dimension {arr.shape[1]} (shape {arr.shape}) does not match the "
            f"fitted reference dimension {dim}; embed both windows with the same model"
        )
    out: np.ndarray = np.ascontiguousarray(arr, dtype=dtype)
    if np.issubdtype(arr.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise MonitorInputError(
                f"{name}: rows {_listing(bad)} contain NaN or inf ({bad.size} of {arr.shape[0]} "
                "rows); drop or repair those rows before checking"
            )
    return out


def as_vector(x: Any, name: str, *, min_rows: int = 10) -> np.ndarray:
    """Return ``x`` as a 1-D finite float64 array (e.g. top-1 similarities) or raise ``MonitorInputError``."""
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise MonitorInputError(
            f"{name}: could not convert {type(x).__name__} to an array ({exc}); pass a 1-D numpy array of floats"
        ) from exc
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MonitorInputError(f"{name}: dtype {arr.dtype} is not a real number type; pass a 1-D float array")
    if arr.ndim != 1:
        raise MonitorInputError(
            f"{name}: expected a 1-D array (one value per query), got shape {arr.shape}; "
            "pass e.g. the top-1 similarity of each query"
        )
    if arr.shape[0] < min_rows:
        raise MonitorInputError(
            f"{name}: {arr.shape[0]} values, need at least {min_rows} (min_rows={min_rows}); "
            "collect a larger window or lower min_rows"
        )
    out = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise MonitorInputError(
            f"{name}: entries {_listing(bad)} are NaN or inf ({bad.size} of {arr.shape[0]}); "
            "drop or repair them before checking"
        )
    return out


def as_ids(x: Any, name: str, *, min_rows: int = 10) -> np.ndarray:
    """Return ``x`` as a 1-D array of integer or string ids or raise ``MonitorInputError``."""
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise MonitorInputError(
            f"{name}: could not convert {type(x).__name__} to an array ({exc}); pass a 1-D array of document ids"
        ) from exc
    if arr.ndim != 1:
        raise MonitorInputError(
            f"{name}: expected a 1-D array of document ids, got shape {arr.shape}; pass one top-1 document id per query"
        )
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer)
        or arr.dtype.kind in "US"
        or (arr.dtype == object and all(isinstance(v, (int, str)) for v in arr.tolist()))
    ):
        raise MonitorInputError(f"{name}: dtype {arr.dtype} is not an id type; pass integer or string document ids")
    if arr.shape[0] < min_rows:
        raise MonitorInputError(
            f"{name}: {arr.shape[0]} ids, need at least {min_rows} (min_rows={min_rows}); "
            "collect a larger window or lower min_rows"
        )
    return arr


def check_alpha(alpha: float, name: str = "alpha") -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise MonitorInputError(f"{name}={alpha!r} must lie strictly between 0 and 1; typical values are 0.01 or 0.05")
    return a


def check_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MonitorInputError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def require_fitted(fitted: bool, detector: str) -> None:
    if not fitted:
        raise NotFittedError(f"{detector}: check() was called before fit(); call fit(reference) first")


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy, so results and their parameters cannot be changed after the fact."""
    return MappingProxyType(dict(mapping or {}))


def readonly(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, copy=True)
    out.setflags(write=False)
    return out

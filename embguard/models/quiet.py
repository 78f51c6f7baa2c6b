"""Scoped silence for transformers' progress bars (its "Loading weights" bar on every model load)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_restore = False


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars (its "Loading weights" bar on every model load) while loading.

    Scoped, not global: a caller's own progress bars (the trainer's) and its transformers settings are left as
    they were once the load returns. Reentrant and thread-safe: the setting is restored when the last of
    overlapping loads finishes. ``encode`` passes ``show_progress_bar=False`` itself.
    """
    global _quiet_depth, _quiet_restore
    from transformers.utils import logging as hf_logging

    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_restore = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_restore:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated

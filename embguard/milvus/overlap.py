"""Encode the next batch while the previous one is written: the one write pipeline of ``Client.insert`` and the
swap's local backfill.

One writer thread, so writes land in order; the encoders and gRPC release the GIL, so encoding and writing overlap
on two cores. ``written(batch, n)`` runs on the caller's thread after each batch's write returned, in order (the
backfill commits its cursor there). A failure raises at the batch it hit; every batch before it was written and
reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

B = TypeVar("B")
R = TypeVar("R")


def write_overlapped(
    batches: Iterable[B],
    encode: Callable[[B], R],
    write: Callable[[R], int],
    written: Callable[[B, int], None] = lambda batch, n: None,
    name: str = "embguard-write",
) -> int:
    """Rows written in all: ``write(encode(batch))`` for each batch, encoding batch i+1 while batch i is written."""
    total = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as writer:
        pending: tuple[Future[int], B] | None = None
        for batch in batches:
            rows = encode(batch)
            if pending is not None:
                n = pending[0].result()
                total += n
                written(pending[1], n)
            pending = (writer.submit(write, rows), batch)
        if pending is not None:
            n = pending[0].result()
            total += n
            written(pending[1], n)
    return total

"""The one encode-while-writing pipeline (Client.insert, the local backfill): writes in order, each reported after
it returned, and a failing write stops the pipeline with every earlier batch written and reported."""

from __future__ import annotations

import threading

import pytest

from embguard.milvus.overlap import write_overlapped


def test_batches_are_written_in_order_and_reported_after_their_write() -> None:
    writes: list[list[int]] = []
    reported: list[tuple[int, int]] = []
    writer_threads: set[str] = set()

    def write(rows: list[int]) -> int:
        writer_threads.add(threading.current_thread().name)
        writes.append(rows)
        return len(rows)

    def written(batch: int, n: int) -> None:
        assert [b for b, _ in reported] == list(range(batch))  # in order, once each
        assert len(writes) > batch  # after its write returned
        reported.append((batch, n))

    total = write_overlapped(range(5), lambda b: [b] * (b + 1), write, written, name="t-write")
    assert total == 15 and writes == [[b] * (b + 1) for b in range(5)]
    assert reported == [(b, b + 1) for b in range(5)]
    assert all(t.startswith("t-write") for t in writer_threads)


def test_a_failed_write_raises_after_the_batches_before_it_were_reported() -> None:
    reported: list[int] = []

    def write(rows: list[int]) -> int:
        if rows == [2]:
            raise ConnectionError("Milvus went away")
        return 1

    with pytest.raises(ConnectionError, match="went away"):
        write_overlapped(range(5), lambda b: [b], write, lambda b, n: reported.append(b))
    assert reported == [0, 1]
    assert write_overlapped([], lambda b: b, write) == 0

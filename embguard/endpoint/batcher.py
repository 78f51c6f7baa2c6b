"""Dynamic micro-batching: the texts of concurrent requests encoded together, one encode at a time.

An encoder pass over 64 short texts costs little more than over one on a CPU (the matrix multiplies are wider,
not longer), so throughput under concurrency comes from batching across requests. No timer is involved: while
one batch is encoding, new requests queue; when it finishes, everything queued for the same model and role
(up to ``max_texts``) becomes the next batch. A lone request is therefore encoded at once (no added latency),
and under load batches grow by themselves to what arrived during the previous pass.

Encoding runs on one worker thread: torch already spreads one pass over every core, and two passes at once
would only contend for them.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from embguard.models.loading import EmbeddingModel

# role -> which encoding: what a collection stores ("document") or what a search sends ("query"); the same for
# a symmetric model.
ROLES = ("document", "query")


@dataclass(frozen=True)
class Encoded:
    vectors: np.ndarray  # float32, one L2-normalised row per text
    tokens: int  # tokens the model read (after its own truncation), for the response's ``usage``


@dataclass
class _Job:
    model: EmbeddingModel
    role: str
    texts: Sequence[str]
    done: asyncio.Future[Encoded] = field(repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.model.model_id, self.role


class Batcher:
    """``await encode(model, texts, role)`` from any number of concurrent requests. ``on_batch(n, seconds)`` is
    told the size of every batch encoded and how long it took (for the metrics). A batch is encoded in
    length-sorted passes of ``pass_size`` texts. Start with ``start()`` inside the serving event loop."""

    def __init__(self, max_texts: int, on_batch: Callable[[int, float], None] | None = None, pass_size: int = 8):
        self.max_texts = max_texts
        self.pass_size = pass_size
        self._on_batch = on_batch
        self._pending: collections.deque[_Job] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embguard-encode")
        self._inflight: list[_Job] = []
        self._closed = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="embguard-batcher")
        self._worker.add_done_callback(self._worker_ended)

    def _fail_all(self, why: BaseException) -> None:
        for job in [*self._inflight, *self._pending]:
            if not job.done.done():
                job.done.set_exception(why)
        self._inflight, self._pending = [], collections.deque()

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        """The worker only ends when stopped; should it die of anything else, no request may wait forever."""
        self._closed = True
        if task.cancelled():
            self._fail_all(RuntimeError("the embedding endpoint is stopping"))
        else:
            self._fail_all(RuntimeError(f"the embedding endpoint's encoder stopped: {task.exception()!r}"))

    async def stop(self) -> None:
        """Fail what is queued or encoding (its callers get an error, never a hang) and stop; a pass already
        running finishes on its thread without holding up the event loop."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._fail_all(RuntimeError("the embedding endpoint is stopping"))
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def queued_texts(self) -> int:
        return sum(len(j.texts) for j in self._pending)

    async def encode(self, model: EmbeddingModel, texts: Sequence[str], role: str = "document") -> Encoded:
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if self._wake is None:
            raise RuntimeError("Batcher.start() was not called in the serving event loop")
        if self._closed:
            raise RuntimeError("the embedding endpoint is stopping")
        job = _Job(model, role, texts, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._wake.set()
        return await job.done

    def _take(self) -> list[_Job]:
        """The oldest job and every queued job for the same model and role, up to ``max_texts`` texts (a job
        larger than that is a batch of its own); jobs for other models keep their place."""
        first = self._pending.popleft()
        batch, n, rest = [first], len(first.texts), collections.deque[_Job]()
        while self._pending:
            job = self._pending.popleft()
            if job.key == first.key and n + len(job.texts) <= self.max_texts:
                batch.append(job)
                n += len(job.texts)
            else:
                rest.append(job)
        rest.extend(self._pending)
        self._pending = rest
        return [j for j in batch if not j.done.cancelled()]  # a client that went away is not encoded for

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take()
            if not batch:
                continue
            texts = [t for j in batch for t in j.texts]
            model, role = batch[0].model, batch[0].role
            started = time.perf_counter()
            self._inflight = batch
            try:
                vectors, tokens = await loop.run_in_executor(self._pool, _encode, model, texts, role, self.pass_size)
            except Exception as exc:  # one bad batch fails its requests, never the worker
                self._inflight = []
                for j in batch:
                    if not j.done.done():
                        j.done.set_exception(exc)
                continue
            # (cancelled mid-pass: _inflight stays, and stop() fails those requests)
            self._inflight = []
            if self._on_batch is not None:
                self._on_batch(len(texts), time.perf_counter() - started)
            start = 0
            for j in batch:
                end = start + len(j.texts)
                if not j.done.done():
                    j.done.set_result(Encoded(vectors[start:end], int(sum(tokens[start:end]))))
                start = end


def _encode(model: EmbeddingModel, texts: list[str], role: str, pass_size: int) -> tuple[np.ndarray, list[int]]:
    # sentence-transformers sorts the batch by length and runs it in passes of ``pass_size``
    fn = model.encode_queries if role == "query" else model.encode
    vectors = fn(texts, batch_size=pass_size)
    return vectors, count_tokens(model, texts)


def count_tokens(model: EmbeddingModel, texts: Sequence[str]) -> list[int]:
    """Tokens the model reads of each text (special tokens included, after truncation to its limit), for
    ``usage``. Called on the encoder thread, which runs every encode of the endpoint's process (feedback's
    included): a fast tokenizer refuses concurrent use ("Already borrowed")."""
    st = model.sentence_transformer
    tokenizer = getattr(st, "tokenizer", None)
    if tokenizer is None:  # a module stack with no single tokenizer: whitespace words
        return [len(t.split()) for t in texts]
    return [len(i) for i in tokenizer(list(texts), truncation=True, max_length=st.max_seq_length)["input_ids"]]

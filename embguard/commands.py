"""What the CLI's commands do, as plain functions: they take settings and a Milvus, return typed results or
the lines to print, and raise embguard's own exceptions. ``embguard.cli`` only parses arguments and echoes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .config import CollectionSettings, Settings
from .errors import ConfigError, RegistryError
from .registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:  # pymilvus loads only for the commands that talk to Milvus
    from .milvus import Milvus
    from .references import ReferenceInfo
    from .swapstate import SwapState


def specs(settings: Settings, collection: str | None) -> list[CollectionSettings]:
    """The watched collections a command acts on: one named alias, or all of them."""
    if collection:
        return [settings.collection(collection)]
    if not settings.collections:
        raise ConfigError("no watched collections: add [[collections]] to the config")
    return list(settings.collections)


def capture_baseline(settings: Settings, milvus: Milvus, alias: str, kind: str, window_s: int | None,
                     size: int | None) -> ReferenceInfo:
    from .references import ReferenceStore
    from .sampling import query_window, sample_documents

    if kind == "queries":
        end = int(time.time() * 1000)
        window = query_window(milvus, alias, end - 1000 * (window_s or settings.sampling.window_s), end)
    else:
        window = sample_documents(milvus, settings.collection(alias), size or settings.sampling.doc_sample_size,
                                  with_text=False)
    return ReferenceStore(settings.state.dir).capture(alias, window, min_size=settings.drift.min_window)


def baseline_lines(settings: Settings, alias: str | None) -> Iterator[str]:
    from .references import ReferenceStore

    refs = ReferenceStore(settings.state.dir).list(alias)
    if not refs:
        yield "no references yet; capture one with `embguard baseline capture ALIAS`"
    for r in refs:
        yield f"{r.alias}\t{r.kind}\tv{r.version:04d}\t{r.size} rows\t{r.model_id}\tage {r.age_s:.0f} s"


def collection_lines(milvus: Milvus) -> Iterator[str]:
    from .managed import list_collections

    rows = list_collections(milvus)
    if not rows:
        yield "no collections"
        return
    yield f"{'alias':<20} {'collection':<28} {'dim':>5} {'rows':>10}  model"
    for r in rows:
        yield (f"{r.alias or '-':<20} {r.collection:<28} {r.dimension:>5} {r.rows:>10}  "
               f"{r.model_id or '- (run embguard adopt)'}")


def model_lines(settings: Settings) -> Iterator[str]:
    versions = ModelRegistry(settings.model.store_dir).list()
    if not versions:
        yield "no model versions registered yet (the default model serves until a candidate is approved)"
    for v in versions:
        gate = v.verdict.get("promote")
        gate_s = "" if gate is None else (" gate: pass" if gate else " gate: FAIL")
        yield f"{v.version}\t{v.status}\t{v.model_id}{gate_s}"


def candidate(settings: Settings, version: str | None) -> ModelVersion:
    """The version ``--approve`` swaps to: the one named, or the only one awaiting approval."""
    registry = ModelRegistry(settings.model.store_dir)
    if version is not None:
        return registry.get(version)
    waiting = registry.awaiting()
    if len(waiting) != 1:
        names = ", ".join(v.version for v in waiting) or "none"
        raise RegistryError(f"{len(waiting)} candidates await approval ({names}); name one with --candidate VERSION")
    return waiting[0]


def switched_line(st: SwapState) -> str:
    v = st.verify
    checked = (f"verified {v.target_count} documents, shadow top-10 overlap {v.top10_overlap:.2f} on "
               f"{v.shadow_queries} queries" if v else "verified")
    return (f"{st.alias}: now served by {st.target} ({st.candidate_model_id}); {checked}. "
            f"Roll back with `embguard rollback --collection {st.alias}`")


def progress_printer() -> Callable[[SwapState], None]:
    """A progress bar per alias for a backfill (tqdm, which the model stack already brings)."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def show(st: SwapState) -> None:
        if st.phase == "created" or not st.total:
            return
        bar = bars.get(st.alias)
        if bar is None:
            bar = bars[st.alias] = tqdm(total=st.total, desc=f"backfill {st.alias}", unit="doc", initial=st.done)
        bar.n = st.done
        bar.refresh()
        if st.phase in ("backfilled", "done"):
            bar.close()

    return show

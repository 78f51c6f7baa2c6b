"""What the model-lifecycle commands do (models, retrain, approve, abort, rollback, gc, labels), as plain
functions in the style of :mod:`embguard.commands`: settings and a Milvus in, lines to print out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import Say, specs
from .config import CollectionSettings, Settings
from .errors import ConfigError, RegistryError
from .registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:  # pymilvus loads only for the commands that talk to Milvus
    from .milvus import Milvus
    from .swapstate import SwapState


def model_lines(settings: Settings) -> Iterator[str]:
    versions = ModelRegistry(settings.model.store_dir).list()
    if not versions:
        yield "no model versions registered yet (the default model serves until a candidate is approved)"
    for v in versions:
        gate_s = "" if v.verdict is None else (" gate: pass" if v.verdict.promote else " gate: FAIL")
        how = v.extra.get("recipe") or ("imported" if v.extra.get("imported_from") else "")
        how_s = f"\t{how}" + (" (no re-embedding)" if v.extra.get("documents_as") else "") if how else ""
        yield f"{v.version}\t{v.status}\t{v.model_id}{gate_s}{how_s}"


def model_json(settings: Settings, version: str) -> str:
    """One version's identity, training manifest and gate verdict as JSON."""
    v = ModelRegistry(settings.model.store_dir).get(version)
    return json.dumps(
        {k: (str(x) if k == "path" else x) for k, x in dataclasses.asdict(v).items()}, indent=2, default=str
    )


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
    checked = (
        f"verified {v.target_count} documents, shadow top-10 overlap {v.top10_overlap:.2f} on "
        f"{v.shadow_queries} queries"
        if v
        else "verified"
    )
    return (
        f"{st.alias}: now served by {st.target} ({st.candidate_model_id}); {checked}. "
        f"Roll back with `embguard rollback --collection {st.alias}`"
    )


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


def abort_swaps(settings: Settings, milvus: Milvus, chosen: list[CollectionSettings]) -> Iterator[str]:
    """Abandon the unfinished swap of each collection (before its switch)."""
    from .swap import Swapper

    for spec in chosen:
        st = Swapper(settings, milvus).abort(spec)
        yield (
            f"{spec.name}: swap to {st.candidate_version} abandoned; {st.source} serves and is the only "
            "collection written"
        )


def with_recipe(settings: Settings, recipe: str | None) -> Settings:
    """``settings`` with ``[retrain] recipe`` replaced (validated, so a recipe's missing inputs are named)."""
    if recipe is None:
        return settings
    from pydantic import ValidationError

    from .opsettings import RetrainSettings

    try:
        rs = RetrainSettings.model_validate({**settings.retrain.model_dump(), "recipe": recipe})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"--recipe {recipe}: {reasons}") from None
    return settings.model_copy(update={"retrain": rs})


def build_candidates(
    settings: Settings, milvus: Milvus, chosen: list[CollectionSettings], say: Say, max_steps: int = -1
) -> Iterator[str]:
    """Train a candidate per collection from its feedback; each gate report as text."""
    from .training import build_candidate

    for spec in chosen:
        yield str(build_candidate(settings, milvus, spec, say=say, max_steps=max_steps))


def import_model(settings: Settings, milvus: Milvus, model_spec: str, collection: str, say: Say) -> str:
    """Gate a model trained elsewhere for ``collection`` and register it; the gate report as text."""
    from .importing import import_candidate

    return str(import_candidate(settings, milvus, settings.collection(collection), model_spec, say=say))


def approve(
    settings: Settings, milvus: Milvus, chosen: ModelVersion, collection: str | None, say: Say, force: bool = False
) -> Iterator[str]:
    """Hot-swap each collection to ``chosen`` (see :func:`candidate`), with a progress bar per backfill."""
    from .swap import Swapper

    swapper = Swapper(settings, milvus, say=say, progress=progress_printer())
    for spec in specs(settings, collection):
        yield switched_line(swapper.approve(spec, chosen, force=force))


def rollback(settings: Settings, milvus: Milvus, collection: str | None, say: Say) -> Iterator[str]:
    """Point each alias back to what it served before its last switch."""
    from .swap import Swapper

    swapper = Swapper(settings, milvus, say=say)
    for spec in specs(settings, collection):
        e = swapper.rollback(spec)
        yield (
            f"{spec.name}: rolled back to {e.target} ({e.target_model}); {e.source} is kept and receives "
            "dual writes until `embguard gc`"
        )


def gc(settings: Settings, milvus: Milvus, retention_s: int | None, dry_run: bool) -> str:
    """Drop (or with ``dry_run`` only list) old versioned collections no alias serves."""
    from .swap import Swapper

    dropped = Swapper(settings, milvus).gc(retention_s, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    return f"{verb}: {', '.join(dropped) if dropped else 'nothing'}"


def export_labels(
    settings: Settings, milvus: Milvus, path: str, collection: str, budget: int, strategy: str = "auto"
) -> str:
    from .labels import export_labels as export

    n = export(settings, milvus, settings.collection(collection), Path(path), budget, strategy=strategy)
    return f"wrote {n} queries to {path}: set each line's doc_id (and signal) and run `embguard label import`"


def import_labels(settings: Settings, milvus: Milvus, path: str, collection: str) -> str:
    from .labels import import_labels as load

    n = load(settings, milvus, settings.collection(collection), Path(path))
    return f"imported {n} labels for {collection}"

"""What the model-lifecycle commands do (models, retrain, approve, abort, rollback, gc, labels), as plain
functions in the style of :mod:`embguard.cli.actions`: settings and a Milvus in, lines to print out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from embguard.cli.actions import Say, only_spec
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import ConfigError, RegistryError
from embguard.models.registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:  # pymilvus loads only for the commands that talk to Milvus
    from embguard.milvus.milvus import Milvus
    from embguard.swap.state import SwapState


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


class ProgressLines:
    """Backfill progress as lines through ``say``: at most one every ``every_s`` seconds, and a last one when the
    backfill is over, so a swap is never silent and never floods a log. ``done`` never exceeds ``total`` (see
    :mod:`embguard.swap.backfill`)."""

    def __init__(self, say: Say, every_s: float = 5.0, clock: Callable[[], float] | None = None):
        import time

        self.say = say
        self.every_s = every_s
        self.clock = clock or time.monotonic
        self.last: dict[str, float] = {}
        self.finished: set[tuple[str, str]] = set()

    def __call__(self, st: SwapState) -> None:
        key = (st.alias, st.target)
        if not st.total or key in self.finished:
            return
        now = self.clock()
        if st.phase == "backfilled":  # the end: one last line, at exactly its total
            self.finished.add(key)
        elif st.phase not in ("created", "dual_write") or now - self.last.get(st.alias, -1e18) < self.every_s:
            return
        self.last[st.alias] = now
        pct = 100.0 * st.done / st.total
        left = st.total - st.done
        eta = f", ETA {left / st.rate:.0f} s" if st.rate > 0 and left else ""
        self.say(
            f"backfill {st.alias} -> {st.target}: {st.done}/{st.total} documents ({pct:.0f}%, {st.rate:.0f}/s{eta})"
        )


def progress_printer(say: Say) -> Callable[[SwapState], None]:
    """Rate-limited backfill progress lines through ``say`` (the command's echo)."""
    return ProgressLines(say)


def abort_swaps(settings: Settings, milvus: Milvus, collection: str | None) -> Iterator[str]:
    """Abandon the unfinished swap of the collection (before its switch)."""
    from embguard.swap.swapper import Swapper

    spec = only_spec(settings, collection, "retrain --abort")
    st = Swapper(settings, milvus).abort(spec)
    yield (
        f"{spec.name}: swap to {st.candidate_version} abandoned; {st.source} serves and is the only collection written"
    )


def with_recipe(settings: Settings, recipe: str | None) -> Settings:
    """``settings`` with ``[retrain] recipe`` replaced (validated, so a recipe's missing inputs are named)."""
    if recipe is None:
        return settings
    from pydantic import ValidationError

    from embguard.config.lifecycle import RetrainSettings

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
    from embguard.training.candidates import build_candidate

    for spec in chosen:
        yield str(build_candidate(settings, milvus, spec, say=say, max_steps=max_steps))


def import_model(settings: Settings, milvus: Milvus, model_spec: str, collection: str, say: Say) -> str:
    """Gate a model trained elsewhere for ``collection`` and register it; the gate report as text."""
    from embguard.training.importing import import_candidate

    return str(import_candidate(settings, milvus, settings.collection(collection), model_spec, say=say))


def require_model(milvus: Milvus, name: str, doing: str) -> None:
    """Refuse a monitor-only collection (its vectors come from the application) before anything else is looked up."""
    from embguard.milvus.adopt import require_model as required

    required(milvus, name, doing)


def approve(
    settings: Settings, milvus: Milvus, chosen: ModelVersion, collection: str | None, say: Say, force: bool = False
) -> Iterator[str]:
    """Hot-swap the collection to ``chosen`` (see :func:`candidate`), with progress lines for the backfill."""
    from embguard.swap.swapper import Swapper

    spec = only_spec(settings, collection, "retrain --approve")
    swapper = Swapper(settings, milvus, say=say, progress=progress_printer(say))
    yield switched_line(swapper.approve(spec, chosen, force=force))


def rollback(settings: Settings, milvus: Milvus, collection: str | None, say: Say) -> Iterator[str]:
    """Point the alias back to what it served before its last switch."""
    from embguard.swap.swapper import Swapper

    spec = only_spec(settings, collection, "rollback")
    e = Swapper(settings, milvus, say=say).rollback(spec)
    yield (
        f"{spec.name}: rolled back to {e.target} ({e.target_model}); {e.source} is kept and receives "
        "dual writes until `embguard gc`"
    )


def gc(settings: Settings, milvus: Milvus, retention_s: int | None, dry_run: bool, say: Say) -> str:
    """Say what gc keeps and drops and why, then drop (with ``dry_run`` only say) old versioned collections."""
    from embguard.swap.swapper import Swapper

    dropped = Swapper(settings, milvus, say=say).gc(retention_s, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    return f"{verb}: {', '.join(dropped) if dropped else 'nothing'}"


def export_labels(
    settings: Settings, milvus: Milvus, path: str, collection: str, budget: int, strategy: str = "auto"
) -> str:
    from embguard.training.labels import export_labels as export

    n = export(settings, milvus, settings.collection(collection), Path(path), budget, strategy=strategy)
    return f"wrote {n} queries to {path}: set each line's doc_id (and signal) and run `embguard label import`"


def import_labels(settings: Settings, milvus: Milvus, path: str, collection: str) -> str:
    from embguard.training.labels import import_labels as load

    n = load(settings, milvus, settings.collection(collection), Path(path))
    return f"imported {n} labels for {collection}"

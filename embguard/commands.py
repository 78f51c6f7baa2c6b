"""What the CLI's commands do, as plain functions: they take settings and a Milvus, return typed results or
the lines to print, and raise embguard's own exceptions. ``embguard.cli`` only parses arguments and echoes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import CollectionSettings, Settings, masked, redact_uri
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


Say = Callable[[str], None]


def config_summary(settings: Settings) -> str:
    """The one line `config check` prints for a valid configuration."""
    return (
        f"ok: {settings.source} ({len(settings.collections)} collection(s), "
        f"{len(settings.alerts)} alert target(s), Milvus {redact_uri(settings.milvus_uri)})"
    )


def config_dump(settings: Settings, as_json: bool) -> str:
    """The effective configuration, secrets masked, as TOML (or JSON) under a comment naming its source."""
    import tomli_w

    data = masked(settings)
    body = json.dumps(data, indent=2) if as_json else tomli_w.dumps(data)
    return f"# effective config from {settings.source}; secrets masked\n{body}"


def lite_start(settings: Settings) -> Iterator[str]:
    """Start the local Milvus Lite server in the background."""
    from .lite import LiteServer

    status = LiteServer.from_settings(settings).start()
    yield f"started: {status.describe()}"
    yield f"connect with uri={status.uri}"


def lite_stop(settings: Settings) -> str:
    """Stop the server this state directory started; no error if it is not running."""
    from .lite import LiteServer

    server = LiteServer.from_settings(settings)
    before = server.status()
    server.stop()
    return f"stopped pid {before.pid}" if before.running else "not running"


def lite_status(settings: Settings) -> tuple[bool, str]:
    """Whether the server runs, and the line describing it."""
    from .lite import LiteServer

    status = LiteServer.from_settings(settings).status()
    return status.running, status.describe()


def adopt(settings: Settings, milvus: Milvus, name: str, model_spec: str, force: bool = False) -> str:
    """Record which model made an existing collection's vectors."""
    from .adopt import adopt as record

    model_id = record(settings, milvus, name, model_spec, force=force)
    return f"{name}: embguard.model_id = {model_id}"


def create_collection(settings: Settings, milvus: Milvus, name: str, model_spec: str, index_type: str | None) -> str:
    """Create NAME__v1, its alias and model property; the line describing the result."""
    from .managed import create

    info = create(settings, milvus, name, model_spec, index_type=index_type)
    return f"{info.alias} -> {info.collection} ({info.dimension}-d, model {info.model_id})"


def serve(settings: Settings, once: bool = False) -> Iterator[str]:
    """Run the daemon until stopped, or with ``once`` run every job once and yield each check's summary."""
    from .daemon import Daemon

    daemon = Daemon(settings)
    if not once:
        daemon.serve()
        return
    daemon.run_once()
    for alias, report in daemon.reports().items():
        yield report.summary() if report else f"{alias}: not checked"
    daemon.stop()


def status_text(settings: Settings, as_json: bool) -> str:
    """What the daemon sees, as text (or JSON)."""
    from .status import gather, render

    st = gather(settings)
    return json.dumps(st, indent=2, default=str) if as_json else render(st)


def demo(settings: Settings, fast: bool, seed: int, say: Say) -> bool:
    """Run the offline demo loop; whether every step did what it should."""
    from . import demo as demo_mod

    summary = demo_mod.run(settings, fast=fast, seed=seed, say=say)
    return bool(
        summary.drift_after_shift
        and summary.gate_passed
        and summary.swap_completed
        and not summary.failed_searches
        and not summary.left_running
    )


def capture_baseline(
    settings: Settings, milvus: Milvus, alias: str, kind: str, window_s: int | None, size: int | None
) -> ReferenceInfo:
    from .references import ReferenceStore
    from .sampling import query_window, sample_documents

    if kind == "queries":
        end = int(time.time() * 1000)
        window = query_window(milvus, alias, end - 1000 * (window_s or settings.sampling.window_s), end)
    else:
        window = sample_documents(
            milvus, settings.collection(alias), size or settings.sampling.doc_sample_size, with_text=False
        )
    return ReferenceStore(settings.state.dir).capture(alias, window, min_size=settings.drift.min_window)


def reference_line(info: ReferenceInfo, alias: str) -> str:
    return (
        f"captured {info.kind} reference v{info.version:04d} for {alias}: {info.size} rows, "
        f"model {info.model_id}, {info.path}"
    )


def prune(settings: Settings, milvus: Milvus) -> str:
    """Apply the retention limits now; the line saying what was deleted."""
    from .retention import Pins
    from .retention import prune as prune_rows

    s = settings.sampling
    res = prune_rows(
        milvus,
        Pins(settings.state.dir),
        tap_max_age_s=s.tap_max_age_s,
        tap_max_rows=s.tap_max_rows,
        feedback_max_age_s=s.feedback_max_age_s,
    )
    return (
        f"pruned {res.tap_deleted} tapped queries and {res.feedback_deleted} feedback rows "
        f"({res.pinned_feedback} feedback rows pinned by pending training sets)"
    )


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
        yield (
            f"{r.alias or '-':<20} {r.collection:<28} {r.dimension:>5} {r.rows:>10}  "
            f"{r.model_id or '- (run embguard adopt)'}"
        )


def model_lines(settings: Settings) -> Iterator[str]:
    versions = ModelRegistry(settings.model.store_dir).list()
    if not versions:
        yield "no model versions registered yet (the default model serves until a candidate is approved)"
    for v in versions:
        gate = v.verdict.get("promote")
        gate_s = "" if gate is None else (" gate: pass" if gate else " gate: FAIL")
        yield f"{v.version}\t{v.status}\t{v.model_id}{gate_s}"


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


def build_candidates(
    settings: Settings, milvus: Milvus, chosen: list[CollectionSettings], say: Say, max_steps: int = -1
) -> Iterator[str]:
    """Train a candidate per collection from its feedback; each gate report as text."""
    from .training import build_candidate

    for spec in chosen:
        yield str(build_candidate(settings, milvus, spec, say=say, max_steps=max_steps))


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

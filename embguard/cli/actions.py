"""What the CLI's commands do, as plain functions: they take settings and a Milvus, return typed results or
the lines to print, and raise embguard's own exceptions. ``embguard.cli`` only parses arguments and echoes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from embguard.config.credentials import masked, redact_uri
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import ConfigError

if TYPE_CHECKING:  # pymilvus loads only for the commands that talk to Milvus
    from embguard.checks.references import ReferenceInfo
    from embguard.milvus.milvus import Milvus


def specs(settings: Settings, collection: str | None) -> list[CollectionSettings]:
    """The watched collections a command acts on: one named alias, or all of them."""
    if collection:
        return [settings.collection(collection)]
    if not settings.collections:
        raise ConfigError("no watched collections: add [[collections]] to the config")
    return list(settings.collections)


def only_spec(settings: Settings, collection: str | None, command: str) -> CollectionSettings:
    """The one watched alias a state-changing ``command`` (approve, abort, rollback) acts on: the one named, or
    the only one configured. With several configured it never guesses, and never acts on all of them."""
    if collection:
        return settings.collection(collection)
    names = [c.name for c in settings.collections]
    if not names:
        raise ConfigError("no watched collections: add [[collections]] to the config")
    if len(names) > 1:
        raise ConfigError(
            f"`embguard {command}` acts on one collection and {len(names)} are configured "
            f"({', '.join(names)}); name one with --collection, e.g. `embguard {command} --collection {names[0]}`"
        )
    return settings.collection(names[0])


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
    from embguard.milvus.lite import LiteServer

    status = LiteServer.from_settings(settings).start()
    yield f"started: {status.describe()}"
    yield f"connect with uri={status.uri}"


def lite_stop(settings: Settings) -> str:
    """Stop the server this state directory started; no error if it is not running."""
    from embguard.milvus.lite import LiteServer

    server = LiteServer.from_settings(settings)
    before = server.status()
    server.stop()
    return f"stopped pid {before.pid}" if before.running else "not running"


def lite_status(settings: Settings) -> tuple[bool, str]:
    """Whether the server runs, and the line describing it."""
    from embguard.milvus.lite import LiteServer

    status = LiteServer.from_settings(settings).status()
    return status.running, status.describe()


def adopt(settings: Settings, milvus: Milvus, name: str, model_spec: str, force: bool = False) -> str:
    """Record which model made an existing collection's vectors."""
    from embguard.milvus.adopt import adopt as record

    model_id = record(settings, milvus, name, model_spec, force=force)
    return f"{name}: embguard.model_id = {model_id}"


def create_collection(settings: Settings, milvus: Milvus, name: str, model_spec: str, index_type: str | None) -> str:
    """Create NAME__v<NNNN> (see embguard.managed), its alias and model property; the line describing the result."""
    from embguard.milvus.managed import create

    info = create(settings, milvus, name, model_spec, index_type=index_type)
    return f"{info.alias} -> {info.collection} ({info.dimension}-d, model {info.model_id})"


def serve(settings: Settings, once: bool = False) -> Iterator[str]:
    """Run the daemon until stopped, or with ``once`` run every job once and yield each check's summary."""
    from embguard.daemon.service import Daemon

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
    from embguard.daemon.status import gather, render

    st = gather(settings)
    return json.dumps(st.to_json(), indent=2, default=str) if as_json else render(st)


def demo(settings: Settings, fast: bool, seed: int, say: Say, app: str | None = None) -> bool:
    """Run the offline demo loop (for ``app``, an unchanged application of that kind); whether every step did what
    it should."""
    if app is not None:
        from embguard.demo import app_act

        return app_act.run(settings, fast=fast, seed=seed, say=say).ok
    from embguard.demo import run as demo_mod

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
    from embguard.checks.references import ReferenceStore
    from embguard.checks.windows import query_window, sample_documents

    if kind == "queries":
        end = int(time.time() * 1000)
        window = query_window(milvus, alias, end - 1000 * (window_s or settings.sampling.reference_window_s), end)
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
    from embguard.client.retention import Pins
    from embguard.client.retention import prune as prune_rows

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
    from embguard.checks.references import ReferenceStore

    refs = ReferenceStore(settings.state.dir).list(alias)
    if not refs:
        yield "no references yet; capture one with `embguard baseline capture --collection ALIAS`"
    for r in refs:
        yield f"{r.alias}\t{r.kind}\tv{r.version:04d}\t{r.size} rows\t{r.model_id}\tage {r.age_s:.0f} s"


def collection_lines(milvus: Milvus) -> Iterator[str]:
    from embguard.milvus.managed import list_collections

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

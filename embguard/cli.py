"""The ``embguard`` command: a thin shell over the library. The only module that imports click.

Library errors (``EmbguardError``) become one-line messages and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import click
import tomli_w

from . import __version__, commands
from . import config as config_mod
from .errors import EmbguardError

if TYPE_CHECKING:
    from .milvus import Milvus


class _Group(click.Group):
    """Turns library errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbguardError as exc:
            raise click.ClickException(config_mod.redact_uri(str(exc))) from None
        except ModuleNotFoundError as exc:
            if "pip install" not in str(exc):  # only an optional extra's import site says how to install it
                raise
            raise click.ClickException(str(exc)) from None


class _Settings:
    """Loads the settings on first use, so `config check FILE` can validate a file of its own."""

    def __init__(self, path: str | None):
        self.path = path
        self._settings: config_mod.Settings | None = None

    def get(self) -> config_mod.Settings:
        if self._settings is None:
            self._settings = config_mod.load(self.path)
        return self._settings


def _settings(ctx: click.Context) -> config_mod.Settings:
    return ctx.find_object(_Settings).get()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="embguard")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=config_mod.CONFIG_ENV,
              help="Config file (TOML). Default: $EMBGUARD_CONFIG, else ./embguard.toml if present.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """embguard: catch embedding drift in Milvus, retrain, and hot-swap the model."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _Settings(config_path)


# --- config ----------------------------------------------------------------------------------------------

@cli.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, path: str | None) -> None:
    """Validate a config file (default: the one embguard would use) and the EMBGUARD_* environment."""
    settings = config_mod.load(path) if path else _settings(ctx)
    click.echo(f"ok: {settings.source} ({len(settings.collections)} collection(s), "
               f"{len(settings.alerts)} alert target(s), Milvus {config_mod.redact_uri(settings.milvus_uri)})")


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    settings = _settings(ctx)
    data = config_mod.masked(settings)
    click.echo(f"# effective config from {settings.source}; secrets masked")
    click.echo(json.dumps(data, indent=2) if as_json else tomli_w.dumps(data))


@config_group.command("reference")
def config_reference() -> None:
    """Print the configuration reference (every key, type, default and meaning) as Markdown."""
    click.echo(config_mod.reference_markdown(), nl=False)


# --- lite ------------------------------------------------------------------------------------------------

@cli.group("lite")
def lite_group() -> None:
    """Run the local Milvus Lite server (the embedded default) on loopback."""


def _server(ctx: click.Context) -> Any:
    from .lite import LiteServer

    return LiteServer.from_settings(_settings(ctx))


@lite_group.command("start")
@click.pass_context
def lite_start(ctx: click.Context) -> None:
    """Start the server in the background (data dir and port from [lite])."""
    status = _server(ctx).start()
    click.echo(f"started: {status.describe()}")
    click.echo(f"connect with uri={status.uri}")


@lite_group.command("stop")
@click.pass_context
def lite_stop(ctx: click.Context) -> None:
    """Stop the server this state directory started (no error if it is not running)."""
    server = _server(ctx)
    before = server.status()
    server.stop()
    click.echo(f"stopped pid {before.pid}" if before.running else "not running")


@lite_group.command("status")
@click.pass_context
def lite_status(ctx: click.Context) -> None:
    """Say whether the server runs; exit code 3 when it does not."""
    status = _server(ctx).status()
    click.echo(status.describe())
    if not status.running:
        ctx.exit(3)


# --- collections, baselines, retention ------------------------------------------------------------------

def _milvus(ctx: click.Context) -> Milvus:
    from .milvus import Milvus

    milvus = Milvus.connect(_settings(ctx))
    ctx.call_on_close(milvus.close)
    return milvus


@cli.command("adopt")
@click.argument("name")
@click.option("--model", "model_spec", default="default", show_default=True,
              help="The model that made the collection's vectors.")
@click.option("--force", is_flag=True, help="Replace a model id the collection already records.")
@click.pass_context
def adopt_cmd(ctx: click.Context, name: str, model_spec: str, force: bool) -> None:
    """Record which model made the vectors of an existing collection (or alias) NAME."""
    from .adopt import adopt

    model_id = adopt(_settings(ctx), _milvus(ctx), name, model_spec, force=force)
    click.echo(f"{name}: embguard.model_id = {model_id}")


@cli.group("collection")
def collection_group() -> None:
    """Create and list the collections embguard manages (alias -> versioned collection -> model)."""


@collection_group.command("create")
@click.argument("name")
@click.option("--model", "model_spec", default="default", show_default=True,
              help="Model spec: 'default', a local sentence-transformers directory, or a registry version.")
@click.option("--index", "index_type", default=None, help="Vector index type (default: [[collections]] or HNSW).")
@click.pass_context
def collection_create(ctx: click.Context, name: str, model_spec: str, index_type: str | None) -> None:
    """Create NAME__v1 with the model's dimension, the alias NAME and the model property."""
    from .managed import create

    info = create(_settings(ctx), _milvus(ctx), name, model_spec, index_type=index_type)
    click.echo(f"{info.alias} -> {info.collection} ({info.dimension}-d, model {info.model_id})")


@collection_group.command("list")
@click.pass_context
def collection_list(ctx: click.Context) -> None:
    """Show alias -> collection -> model -> rows for every collection on the Milvus."""
    for line in commands.collection_lines(_milvus(ctx)):
        click.echo(line)


@cli.group("baseline")
def baseline_group() -> None:
    """Capture and list reference windows that live traffic is compared with."""


@baseline_group.command("capture")
@click.argument("alias")
@click.option("--kind", type=click.Choice(["queries", "documents"]), default="queries", show_default=True,
              help="Tapped queries of a time window, or a uniform sample of the collection's documents.")
@click.option("--window-s", type=click.IntRange(1), default=None,
              help="Query window length in seconds (default: sampling.window_s).")
@click.option("--size", type=click.IntRange(1), default=None,
              help="Documents to sample (default: sampling.doc_sample_size).")
@click.pass_context
def baseline_capture(ctx: click.Context, alias: str, kind: str, window_s: int | None, size: int | None) -> None:
    """Freeze the current window of ALIAS as its reference (earlier references are kept)."""
    info = commands.capture_baseline(_settings(ctx), _milvus(ctx), alias, kind, window_s, size)
    click.echo(f"captured {info.kind} reference v{info.version:04d} for {alias}: {info.size} rows, "
               f"model {info.model_id}, {info.path}")


@baseline_group.command("list")
@click.argument("alias", required=False)
@click.pass_context
def baseline_list(ctx: click.Context, alias: str | None) -> None:
    """List stored references (all aliases, or ALIAS)."""
    for line in commands.baseline_lines(_settings(ctx), alias):
        click.echo(line)


@cli.command("prune")
@click.pass_context
def prune_cmd(ctx: click.Context) -> None:
    """Apply the retention limits to the tap and feedback collections now (the daemon does it on a schedule)."""
    from .retention import Pins, prune

    settings = _settings(ctx)
    s = settings.sampling
    res = prune(_milvus(ctx), Pins(settings.state.dir), tap_max_age_s=s.tap_max_age_s, tap_max_rows=s.tap_max_rows,
                feedback_max_age_s=s.feedback_max_age_s)
    click.echo(f"pruned {res.tap_deleted} tapped queries and {res.feedback_deleted} feedback rows "
               f"({res.pinned_feedback} feedback rows pinned by pending training sets)")


# --- daemon ---------------------------------------------------------------------------------------------

@cli.command("serve")
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron or a smoke test).")
@click.pass_context
def serve_cmd(ctx: click.Context, once: bool) -> None:
    """Run the sidecar daemon: sample, check, export metrics, alert, prune (until SIGTERM/SIGINT)."""
    from .daemon import Daemon

    settings = _settings(ctx)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.INFO)
    daemon = Daemon(settings)
    if once:
        daemon.run_once()
        for alias, report in daemon.reports().items():
            click.echo(report.summary() if report else f"{alias}: not checked")
        daemon.stop()
        return
    daemon.serve()


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show what the daemon sees: collections, references, last checks, active models, candidates."""
    from .status import gather, render

    st = gather(_settings(ctx))
    click.echo(json.dumps(st, indent=2, default=str) if as_json else render(st))


# --- models, retrain, swap ------------------------------------------------------------------------------

@cli.group("models")
def models_group() -> None:
    """The model registry: versions, their status and gate verdicts."""


@models_group.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered model versions."""
    for line in commands.model_lines(_settings(ctx)):
        click.echo(line)


@models_group.command("show")
@click.argument("version")
@click.pass_context
def models_show(ctx: click.Context, version: str) -> None:
    """Show one version's identity, training manifest and gate verdict."""
    import dataclasses

    from .registry import ModelRegistry

    v = ModelRegistry(_settings(ctx).model.store_dir).get(version)
    click.echo(json.dumps({k: (str(x) if k == "path" else x) for k, x in dataclasses.asdict(v).items()}, indent=2,
                          default=str))


@cli.command("retrain")
@click.option("--approve", is_flag=True, help="Swap the collection(s) to an approved candidate (hot-swap).")
@click.option("--candidate", default=None, help="Model version to approve (default: the one awaiting approval).")
@click.option("--collection", default=None, help="Only this watched alias (default: all).")
@click.option("--force", is_flag=True, help="Approve a version that is not awaiting approval.")
@click.option("--abort", is_flag=True, help="Abandon an unfinished swap (before its switch).")
@click.option("--max-steps", type=int, default=-1, hidden=True, help="Cap training steps (smoke tests).")
@click.pass_context
def retrain_cmd(ctx: click.Context, approve: bool, candidate: str | None, collection: str | None,
                force: bool, abort: bool, max_steps: int) -> None:
    """Build a candidate model from feedback (gate report), or with --approve hot-swap to it."""
    settings = _settings(ctx)
    if abort:
        from .swap import Swapper

        for spec in commands.specs(settings, collection):
            st = Swapper(settings, _milvus(ctx)).abort(spec)
            click.echo(f"{spec.name}: swap to {st.candidate_version} abandoned; {st.source} serves and is the only "
                       "collection written")
        return
    if not approve:
        from .training import build_candidate

        for spec in commands.specs(settings, collection):
            report = build_candidate(settings, _milvus(ctx), spec, say=click.echo, max_steps=max_steps)
            click.echo(str(report))
        return
    from .swap import Swapper

    version = commands.candidate(settings, candidate)
    swapper = Swapper(settings, _milvus(ctx), say=click.echo, progress=commands.progress_printer())
    for spec in commands.specs(settings, collection):
        click.echo(commands.switched_line(swapper.approve(spec, version, force=force)))


@cli.command("rollback")
@click.option("--collection", default=None, help="Only this watched alias (default: all).")
@click.pass_context
def rollback_cmd(ctx: click.Context, collection: str | None) -> None:
    """Point the alias back to the collection and model it served before the last switch."""
    from .swap import Swapper

    swapper = Swapper(_settings(ctx), _milvus(ctx), say=click.echo)
    for spec in commands.specs(_settings(ctx), collection):
        e = swapper.rollback(spec)
        click.echo(f"{spec.name}: rolled back to {e.target} ({e.target_model}); {e.source} is kept and receives "
                   "dual writes until `embguard gc`")


@cli.command("gc")
@click.option("--retention-s", type=click.IntRange(0), default=None, help="Override swap.retention_s.")
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.pass_context
def gc_cmd(ctx: click.Context, retention_s: int | None, dry_run: bool) -> None:
    """Drop old versioned collections that no alias serves (their aliases and dual-write marks first)."""
    from .swap import Swapper

    dropped = Swapper(_settings(ctx), _milvus(ctx)).gc(retention_s, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    click.echo(f"{verb}: {', '.join(dropped) if dropped else 'nothing'}")


@cli.group("label")
def label_group() -> None:
    """Hand queries to annotators and load their answers as training labels."""


@label_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--collection", required=True, help="Watched alias whose tapped queries to pick from.")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True, help="Queries to pick.")
@click.pass_context
def label_export(ctx: click.Context, path: str, collection: str, budget: int) -> None:
    """Write the queries active learning picks (with their current top-5 passages) to JSONL at PATH."""
    from pathlib import Path

    from .training import export_labels

    settings = _settings(ctx)
    n = export_labels(settings, _milvus(ctx), settings.collection(collection), Path(path), budget)
    click.echo(f"wrote {n} queries to {path}: set each line's doc_id (and signal) and run `embguard label import`")


@label_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--collection", required=True, help="Watched alias the labels are for.")
@click.pass_context
def label_import(ctx: click.Context, path: str, collection: str) -> None:
    """Validate an annotated JSONL file and load it as feedback (all lines or none)."""
    from pathlib import Path

    from .training import import_labels

    settings = _settings(ctx)
    n = import_labels(settings, _milvus(ctx), settings.collection(collection), Path(path))
    click.echo(f"imported {n} labels for {collection}")


# --- demo ------------------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("--fast", is_flag=True, help="A smaller corpus and less traffic (what the tests run).")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated traffic.")
@click.pass_context
def demo(ctx: click.Context, fast: bool, seed: int) -> None:
    """The whole loop offline: baseline, drift, retrain, gate, approve, swap, rollback; then stop everything."""
    from . import demo as demo_mod

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.ERROR)
    summary = demo_mod.run(_settings(ctx), fast=fast, seed=seed, say=click.echo)
    ok = (summary.drift_after_shift and summary.gate_passed and summary.swap_completed
          and not summary.failed_searches and not summary.left_running)
    if not ok:
        ctx.exit(1)


def main() -> None:
    cli(prog_name="embguard")


if __name__ == "__main__":  # pragma: no cover
    main()

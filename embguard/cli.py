"""The ``embguard`` command: a thin shell over the library. The only module that imports click.

Library errors (``EmbguardError``) become one-line messages and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from . import __version__, commands
from . import config as config_mod
from .errors import EmbguardError

if TYPE_CHECKING:
    from .milvus import Milvus


_SETTINGS = "embguard.settings"


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


def _settings(ctx: click.Context) -> config_mod.Settings:
    """The settings, loaded on first use (so `config check FILE` can validate a file of its own)."""
    if _SETTINGS not in ctx.meta:  # ctx.meta is shared by every context of one invocation
        ctx.meta[_SETTINGS] = config_mod.load(ctx.find_root().obj)
    settings: config_mod.Settings = ctx.meta[_SETTINGS]
    return settings


def _echo(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="embguard")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar=config_mod.CONFIG_ENV,
    help="Config file (TOML). Default: $EMBGUARD_CONFIG, else ./embguard.toml if present.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """embguard: catch embedding drift in Milvus, retrain, and hot-swap the model."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = config_path  # read by _settings on first use


# --- config ----------------------------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, path: str | None) -> None:
    """Validate a config file (default: the one embguard would use) and the EMBGUARD_* environment."""
    click.echo(commands.config_summary(config_mod.load(path) if path else _settings(ctx)))


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    click.echo(commands.config_dump(_settings(ctx), as_json))


@config_group.command("reference")
def config_reference() -> None:
    """Print the configuration reference (every key, type, default and meaning) as Markdown."""
    click.echo(config_mod.reference_markdown(), nl=False)


# --- lite ------------------------------------------------------------------------------------------------


@cli.group("lite")
def lite_group() -> None:
    """Run the local Milvus Lite server (the embedded default) on loopback."""


@lite_group.command("start")
@click.pass_context
def lite_start(ctx: click.Context) -> None:
    """Start the server in the background (data dir and port from [lite])."""
    _echo(commands.lite_start(_settings(ctx)))


@lite_group.command("stop")
@click.pass_context
def lite_stop(ctx: click.Context) -> None:
    """Stop the server this state directory started (no error if it is not running)."""
    click.echo(commands.lite_stop(_settings(ctx)))


@lite_group.command("status")
@click.pass_context
def lite_status(ctx: click.Context) -> None:
    """Say whether the server runs; exit code 3 when it does not."""
    running, line = commands.lite_status(_settings(ctx))
    click.echo(line)
    if not running:
        ctx.exit(3)


# --- collections, baselines, retention ------------------------------------------------------------------


def _milvus(ctx: click.Context) -> Milvus:
    from .milvus import Milvus

    milvus = Milvus.connect(_settings(ctx))
    ctx.call_on_close(milvus.close)
    return milvus


@cli.command("adopt")
@click.argument("name")
@click.option(
    "--model", "model_spec", default="default", show_default=True, help="The model that made the collection's vectors."
)
@click.option("--force", is_flag=True, help="Replace a model id the collection already records.")
@click.pass_context
def adopt_cmd(ctx: click.Context, name: str, model_spec: str, force: bool) -> None:
    """Record which model made the vectors of an existing collection (or alias) NAME."""
    click.echo(commands.adopt(_settings(ctx), _milvus(ctx), name, model_spec, force=force))


@cli.group("collection")
def collection_group() -> None:
    """Create and list the collections embguard manages (alias -> versioned collection -> model)."""


@collection_group.command("create")
@click.argument("name")
@click.option(
    "--model",
    "model_spec",
    default="default",
    show_default=True,
    help="Model spec: 'default', a local sentence-transformers directory, or a registry version.",
)
@click.option("--index", "index_type", default=None, help="Vector index type (default: [[collections]] or HNSW).")
@click.pass_context
def collection_create(ctx: click.Context, name: str, model_spec: str, index_type: str | None) -> None:
    """Create NAME__v1 with the model's dimension, the alias NAME and the model property."""
    click.echo(commands.create_collection(_settings(ctx), _milvus(ctx), name, model_spec, index_type))


@collection_group.command("list")
@click.pass_context
def collection_list(ctx: click.Context) -> None:
    """Show alias -> collection -> model -> rows for every collection on the Milvus."""
    _echo(commands.collection_lines(_milvus(ctx)))


@cli.group("baseline")
def baseline_group() -> None:
    """Capture and list reference windows that live traffic is compared with."""


@baseline_group.command("capture")
@click.argument("alias")
@click.option(
    "--kind",
    type=click.Choice(["queries", "documents"]),
    default="queries",
    show_default=True,
    help="Tapped queries of a time window, or a uniform sample of the collection's documents.",
)
@click.option(
    "--window-s",
    type=click.IntRange(1),
    default=None,
    help="Query window length in seconds (default: sampling.window_s).",
)
@click.option(
    "--size", type=click.IntRange(1), default=None, help="Documents to sample (default: sampling.doc_sample_size)."
)
@click.pass_context
def baseline_capture(ctx: click.Context, alias: str, kind: str, window_s: int | None, size: int | None) -> None:
    """Freeze the current window of ALIAS as its reference (earlier references are kept)."""
    info = commands.capture_baseline(_settings(ctx), _milvus(ctx), alias, kind, window_s, size)
    click.echo(commands.reference_line(info, alias))


@baseline_group.command("list")
@click.argument("alias", required=False)
@click.pass_context
def baseline_list(ctx: click.Context, alias: str | None) -> None:
    """List stored references (all aliases, or ALIAS)."""
    _echo(commands.baseline_lines(_settings(ctx), alias))


@cli.command("prune")
@click.pass_context
def prune_cmd(ctx: click.Context) -> None:
    """Apply the retention limits to the tap and feedback collections now (the daemon does it on a schedule)."""
    click.echo(commands.prune(_settings(ctx), _milvus(ctx)))


# --- daemon ---------------------------------------------------------------------------------------------


@cli.command("serve")
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron or a smoke test).")
@click.pass_context
def serve_cmd(ctx: click.Context, once: bool) -> None:
    """Run the sidecar daemon: sample, check, export metrics, alert, prune (until SIGTERM/SIGINT)."""
    settings = _settings(ctx)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.INFO)
    _echo(commands.serve(settings, once=once))


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show what the daemon sees: collections, references, last checks, active models, candidates."""
    click.echo(commands.status_text(_settings(ctx), as_json))


# --- models, retrain, swap ------------------------------------------------------------------------------


@cli.group("models")
def models_group() -> None:
    """The model registry: versions, their status and gate verdicts."""


@models_group.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered model versions."""
    _echo(commands.model_lines(_settings(ctx)))


@models_group.command("show")
@click.argument("version")
@click.pass_context
def models_show(ctx: click.Context, version: str) -> None:
    """Show one version's identity, training manifest and gate verdict."""
    click.echo(commands.model_json(_settings(ctx), version))


@cli.command("retrain")
@click.option("--approve", is_flag=True, help="Swap the collection(s) to an approved candidate (hot-swap).")
@click.option("--candidate", default=None, help="Model version to approve (default: the one awaiting approval).")
@click.option("--collection", default=None, help="Only this watched alias (default: all).")
@click.option("--force", is_flag=True, help="Approve a version that is not awaiting approval.")
@click.option("--abort", is_flag=True, help="Abandon an unfinished swap (before its switch).")
@click.option("--max-steps", type=int, default=-1, hidden=True, help="Cap training steps (smoke tests).")
@click.pass_context
def retrain_cmd(
    ctx: click.Context,
    approve: bool,
    candidate: str | None,
    collection: str | None,
    force: bool,
    abort: bool,
    max_steps: int,
) -> None:
    """Build a candidate model from feedback (gate report), or with --approve hot-swap to it."""
    settings = _settings(ctx)  # names are checked before Milvus is reached
    if approve and not abort:
        version = commands.candidate(settings, candidate)
        _echo(commands.approve(settings, _milvus(ctx), version, collection, click.echo, force=force))
        return
    chosen = commands.specs(settings, collection)
    if abort:
        _echo(commands.abort_swaps(settings, _milvus(ctx), chosen))
    else:
        _echo(commands.build_candidates(settings, _milvus(ctx), chosen, click.echo, max_steps=max_steps))


@cli.command("rollback")
@click.option("--collection", default=None, help="Only this watched alias (default: all).")
@click.pass_context
def rollback_cmd(ctx: click.Context, collection: str | None) -> None:
    """Point the alias back to the collection and model it served before the last switch."""
    _echo(commands.rollback(_settings(ctx), _milvus(ctx), collection, click.echo))


@cli.command("gc")
@click.option("--retention-s", type=click.IntRange(0), default=None, help="Override swap.retention_s.")
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.pass_context
def gc_cmd(ctx: click.Context, retention_s: int | None, dry_run: bool) -> None:
    """Drop old versioned collections that no alias serves (their aliases and dual-write marks first)."""
    click.echo(commands.gc(_settings(ctx), _milvus(ctx), retention_s, dry_run))


@cli.group("label")
def label_group() -> None:
    """Hand queries to annotators and load their answers as training labels."""


@label_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--collection", required=True, help="Watched alias whose tapped queries to pick from.")
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True, help="Queries to pick.")
@click.option(
    "--strategy",
    type=click.Choice(["auto", "random", "drift"]),
    default="auto",
    show_default=True,
    help="drift: the queries the monitors flag (OOD clusters, fallen top-1, no click); auto: drift while "
    "the last check found drift sustained, else random.",
)
@click.pass_context
def label_export(ctx: click.Context, path: str, collection: str, budget: int, strategy: str) -> None:
    """Write the queries active learning picks (with their current top-5 passages) to JSONL at PATH."""
    click.echo(commands.export_labels(_settings(ctx), _milvus(ctx), path, collection, budget, strategy))


@label_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--collection", required=True, help="Watched alias the labels are for.")
@click.pass_context
def label_import(ctx: click.Context, path: str, collection: str) -> None:
    """Validate an annotated JSONL file and load it as feedback (all lines or none)."""
    click.echo(commands.import_labels(_settings(ctx), _milvus(ctx), path, collection))


# --- demo ------------------------------------------------------------------------------------------------


@cli.command("demo")
@click.option("--fast", is_flag=True, help="A smaller corpus and less traffic (what the tests run).")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated traffic.")
@click.pass_context
def demo(ctx: click.Context, fast: bool, seed: int) -> None:
    """The whole loop offline: baseline, drift, retrain, gate, approve, swap, rollback; then stop everything."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.ERROR)
    if not commands.demo(_settings(ctx), fast=fast, seed=seed, say=click.echo):
        ctx.exit(1)


def main() -> None:
    cli(prog_name="embguard")


if __name__ == "__main__":  # pragma: no cover
    main()

"""Setting up: config, the local Milvus Lite server, collections, baselines and retention."""

from __future__ import annotations

import click

from embguard.cli import actions as commands
from embguard.cli._base import _collection_arg, _echo, _milvus, _settings, cli, collection_option
from embguard.config import loader as config_mod

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


@cli.command("adopt")
@click.argument("name", required=False)
@collection_option("The collection (or alias) whose vectors the model made.")
@click.option(
    "--model", "model_spec", default="default", show_default=True, help="The model that made the collection's vectors."
)
@click.option("--force", is_flag=True, help="Replace a model id the collection already records.")
@click.pass_context
def adopt_cmd(ctx: click.Context, name: str | None, collection: str | None, model_spec: str, force: bool) -> None:
    """Record which model made the vectors of an existing collection (or alias): `adopt --collection NAME`.

    The positional NAME is a deprecated synonym of --collection."""
    name = _collection_arg(ctx, name, collection)
    assert name is not None
    click.echo(commands.adopt(_settings(ctx), _milvus(ctx), name, model_spec, force=force))


@cli.group("collection")
def collection_group() -> None:
    """Create and list the collections embguard manages (alias -> versioned collection -> model)."""


@collection_group.command("create")
@click.argument("name", required=False)
@collection_option("The alias to create (the application searches it).")
@click.option(
    "--model",
    "model_spec",
    default="default",
    show_default=True,
    help="Model spec: 'default', a local sentence-transformers directory, or a registry version.",
)
@click.option("--index", "index_type", default=None, help="Vector index type (default: [[collections]] or HNSW).")
@click.pass_context
def collection_create(
    ctx: click.Context, name: str | None, collection: str | None, model_spec: str, index_type: str | None
) -> None:
    """Create ALIAS__v<NNNN> with the model's dimension, the alias ALIAS and the model property.

    NNNN is the model store version whose vectors the collection holds (v0000 for the shipped default model);
    swaps add ALIAS__v<candidate version>. The positional NAME is a deprecated synonym of --collection."""
    name = _collection_arg(ctx, name, collection)
    assert name is not None
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
@click.argument("alias", required=False)
@collection_option("The watched alias whose window to freeze.")
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
    help="Span of tapped queries to freeze, in seconds (default: sampling.reference_window_s, a day).",
)
@click.option(
    "--size", type=click.IntRange(1), default=None, help="Documents to sample (default: sampling.doc_sample_size)."
)
@click.pass_context
def baseline_capture(
    ctx: click.Context, alias: str | None, collection: str | None, kind: str, window_s: int | None, size: int | None
) -> None:
    """Freeze the current window of --collection ALIAS as its reference (earlier references are kept).

    The positional ALIAS is a deprecated synonym of --collection."""
    alias = _collection_arg(ctx, alias, collection)
    assert alias is not None
    info = commands.capture_baseline(_settings(ctx), _milvus(ctx), alias, kind, window_s, size)
    click.echo(commands.reference_line(info, alias))


@baseline_group.command("list")
@click.argument("alias", required=False)
@collection_option("Only this alias's references (default: all).")
@click.pass_context
def baseline_list(ctx: click.Context, alias: str | None, collection: str | None) -> None:
    """List stored references (all aliases, or --collection ALIAS).

    The positional ALIAS is a deprecated synonym of --collection."""
    _echo(commands.baseline_lines(_settings(ctx), _collection_arg(ctx, alias, collection, required=False)))


@cli.command("prune")
@click.pass_context
def prune_cmd(ctx: click.Context) -> None:
    """Apply the retention limits to the tap and feedback collections now (the daemon does it on a schedule)."""
    click.echo(commands.prune(_settings(ctx), _milvus(ctx)))

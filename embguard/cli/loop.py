"""Running the loop: the daemon and status, the model registry, retrain/approve/rollback, labels, the demo."""

from __future__ import annotations

import contextlib
import logging

import click

from embguard.cli import actions as commands
from embguard.cli import model_actions as modelcommands
from embguard.cli._base import _echo, _milvus, _refuse, _settings, cli, collection_option
from embguard.config.lifecycle import AUTO, RECIPES
from embguard.errors import EmbguardError, MilvusError
from embguard.models.registry import check_version

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


@cli.command("proxy")
@click.pass_context
def proxy_cmd(ctx: click.Context) -> None:
    """Run the Milvus wire proxy: point an application's Milvus URI at proxy.host:proxy.port and its searches
    are watched like the Client's (until SIGTERM/SIGINT). Every call is forwarded to milvus.uri unchanged."""
    from embguard.proxy.service import run

    settings = _settings(ctx)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.INFO)
    run(settings)


@cli.command("endpoint")
@click.pass_context
def endpoint_cmd(ctx: click.Context) -> None:
    """Run the embedding endpoint: point an application's OpenAI (or TEI) embedding client at
    http://endpoint.host:endpoint.port/v1 with model = a collection alias, and it embeds with that collection's
    current model, switched by approve and rollback (until SIGTERM/SIGINT)."""
    from embguard.endpoint.service import run

    settings = _settings(ctx)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.INFO)
    run(settings)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show what the daemon sees: collections, references, last checks, new-query clusters, models, candidates.

    Exit code: 0, 1 when a watched collection's last check failed, 2 when Milvus is unreachable.
    """
    import json

    from embguard.daemon.status import gather, render

    st = gather(_settings(ctx))
    click.echo(json.dumps(st.to_json(), indent=2, default=str) if as_json else render(st))
    if st.exit_code and not as_json:
        click.echo(f"Error: {st.problem}", err=True)
    ctx.exit(st.exit_code)


# --- models, retrain, swap ------------------------------------------------------------------------------


@cli.group("models")
def models_group() -> None:
    """The model registry: versions, their status and gate verdicts."""


@models_group.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered model versions."""
    _echo(modelcommands.model_lines(_settings(ctx)))


@models_group.command("show")
@click.argument("version")
@click.pass_context
def models_show(ctx: click.Context, version: str) -> None:
    """Show one version's identity, training manifest and gate verdict."""
    click.echo(modelcommands.model_json(_settings(ctx), version))


@models_group.command("import")
@click.argument("spec")
@collection_option("Watched alias whose held-out queries gate the model.", required=True)
@click.pass_context
def models_import(ctx: click.Context, spec: str, collection: str) -> None:
    """Gate a local sentence-transformers directory SPEC (any dimension) as a candidate for a collection.

    It goes through the same held-out gate as a retrained candidate; if it passes, approve it with
    `embguard retrain --approve --candidate VERSION` (the swap re-embeds the corpus with it).
    """
    click.echo(modelcommands.import_model(_settings(ctx), _milvus(ctx), spec, collection, click.echo))


@cli.command("retrain")
@click.option("--approve", is_flag=True, help="Swap the collection to an approved candidate (hot-swap).")
@click.option(
    "--candidate", default=None, help="With --approve: the model version (default: the one awaiting approval)."
)
@collection_option(
    "The watched alias. Building: only this one (default: all). --approve/--abort: required when more than one "
    "is configured (default: the only one)."
)
@click.option("--force", is_flag=True, help="With --approve: approve a version that is not awaiting approval.")
@click.option("--abort", is_flag=True, help="Abandon the collection's unfinished swap (before its switch).")
@click.option(
    "--recipe",
    type=click.Choice((*RECIPES, AUTO)),
    default=None,
    help="Building only: how to train the candidate (default: [retrain] recipe; see docs/retrain.md).",
)
@click.option("--max-steps", type=int, default=-1, hidden=True, help="Cap training steps (smoke tests).")
@click.pass_context
def retrain_cmd(
    ctx: click.Context,
    approve: bool,
    candidate: str | None,
    collection: str | None,
    force: bool,
    abort: bool,
    recipe: str | None,
    max_steps: int,
) -> None:
    """Build a candidate model from feedback (gate report), or with --approve hot-swap to it, or with --abort
    abandon an unfinished swap. A flag that does not apply to the mode is refused."""
    if approve and abort:
        raise click.UsageError("--approve and --abort are two modes; pass one", ctx)
    if approve or abort:
        mode = "retrain --approve" if approve else "retrain --abort"
        _refuse(ctx, mode, **{"--recipe": recipe is not None, "--max-steps": max_steps != -1})
    if not approve:
        mode = "retrain --abort" if abort else "retrain (building a candidate)"
        _refuse(ctx, mode, **{"--candidate": candidate is not None, "--force": force})
    settings = _settings(ctx)  # names are checked before Milvus is reached
    if approve:
        if candidate is not None:
            check_version(candidate)  # a bad name first: it is wrong whatever is configured
        spec = commands.only_spec(settings, collection, "retrain --approve")
        try:
            version = modelcommands.candidate(settings, candidate)
        except EmbguardError:
            # A monitor-only collection never has a candidate of its own: say what to do instead of "none await".
            with contextlib.suppress(MilvusError):
                modelcommands.require_model(_milvus(ctx), spec.name, "approve a swap for")
            raise
        _echo(modelcommands.approve(settings, _milvus(ctx), version, collection, click.echo, force=force))
    elif abort:
        commands.only_spec(settings, collection, "retrain --abort")
        _echo(modelcommands.abort_swaps(settings, _milvus(ctx), collection))
    else:
        chosen = commands.specs(settings, collection)
        settings = modelcommands.with_recipe(settings, recipe)
        _echo(modelcommands.build_candidates(settings, _milvus(ctx), chosen, click.echo, max_steps=max_steps))


@cli.command("rollback")
@collection_option("The watched alias; required when more than one is configured (default: the only one).")
@click.pass_context
def rollback_cmd(ctx: click.Context, collection: str | None) -> None:
    """Point the alias back to the collection and model it served before the last switch."""
    settings = _settings(ctx)
    commands.only_spec(settings, collection, "rollback")
    _echo(modelcommands.rollback(settings, _milvus(ctx), collection, click.echo))


@cli.command("gc")
@click.option("--retention-s", type=click.IntRange(0), default=None, help="Override swap.retention_s.")
@click.option("--dry-run", is_flag=True, help="Only print the plan (what would be kept and dropped, and why).")
@click.pass_context
def gc_cmd(ctx: click.Context, retention_s: int | None, dry_run: bool) -> None:
    """Drop old versioned collections of the watched aliases that no alias serves, past retention.

    Prints its plan first: every `ALIAS__*` collection, kept or dropped, and why. Never dropped: a collection
    an alias serves, the rollback target (what the alias served before its last switch), one an unfinished
    swap names, and one embguard did not create (a hand-made `docs__backup`). Retention counts from when a
    collection stopped serving.
    """
    click.echo(modelcommands.gc(_settings(ctx), _milvus(ctx), retention_s, dry_run, click.echo))


@cli.group("label")
def label_group() -> None:
    """Hand queries to annotators and load their answers as training labels."""


@label_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@collection_option("Watched alias whose tapped queries to pick from.", required=True)
@click.option("--budget", type=click.IntRange(1), default=200, show_default=True, help="Queries to pick.")
@click.option(
    "--strategy",
    type=click.Choice(["auto", "random", "drift", "misses"]),
    default="auto",
    show_default=True,
    help="misses: the live model's misses first (no click, then clicks at rank 4 or deeper); drift: the queries "
    "the monitors flag (new-query clusters, fallen top-1, no click); auto: drift while the last check found drift "
    "sustained, else misses.",
)
@click.pass_context
def label_export(ctx: click.Context, path: str, collection: str, budget: int, strategy: str) -> None:
    """Write the queries active learning picks (with their current top-5 passages) to JSONL at PATH."""
    click.echo(modelcommands.export_labels(_settings(ctx), _milvus(ctx), path, collection, budget, strategy))


@label_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@collection_option("Watched alias the labels are for.", required=True)
@click.pass_context
def label_import(ctx: click.Context, path: str, collection: str) -> None:
    """Validate an annotated JSONL file and load it as feedback (all lines or none)."""
    click.echo(modelcommands.import_labels(_settings(ctx), _milvus(ctx), path, collection))


# --- demo ------------------------------------------------------------------------------------------------


@cli.command("demo")
@click.option("--fast", is_flag=True, help="A smaller corpus and less traffic (what the tests run).")
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated traffic.")
@click.option(
    "--app",
    type=click.Choice(["langchain"]),
    default=None,
    help="Run the loop for an unchanged application instead, through embguard proxy and embguard endpoint.",
)
@click.pass_context
def demo(ctx: click.Context, fast: bool, seed: int, app: str | None) -> None:
    """The whole loop offline: baseline, drift, retrain, gate, approve, swap, rollback; then stop everything."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("embguard").setLevel(logging.ERROR)
    if not commands.demo(_settings(ctx), fast=fast, seed=seed, say=click.echo, app=app):
        ctx.exit(1)

"""The ``embguard`` command: a thin shell over the library. The only module that imports click.

Library errors (``EmbguardError``) become one-line messages and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
import tomli_w

from . import config as config_mod
from .errors import EmbguardError


def _version() -> str:
    try:
        return version("embguard")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


class _Group(click.Group):
    """Turns library errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbguardError as exc:
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
@click.version_option(_version(), "--version", prog_name="embguard")
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
               f"{len(settings.alerts)} alert target(s), Milvus {settings.milvus_uri})")


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    settings = _settings(ctx)
    data = config_mod.masked(settings)
    click.echo(f"# effective config from {settings.source}; secrets masked")
    click.echo(json.dumps(data, indent=2) if as_json else tomli_w.dumps(data))


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

def _milvus(ctx: click.Context) -> Any:
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
    import time

    from .references import ReferenceStore
    from .sampling import query_window, sample_documents

    settings = _settings(ctx)
    milvus = _milvus(ctx)
    if kind == "queries":
        end = int(time.time() * 1000)
        window = query_window(milvus, alias, end - 1000 * (window_s or settings.sampling.window_s), end)
    else:
        window = sample_documents(milvus, settings.collection(alias), size or settings.sampling.doc_sample_size,
                                  with_text=False)
    info = ReferenceStore(settings.state.dir).capture(alias, window, min_size=settings.drift.min_window)
    click.echo(f"captured {info.kind} reference v{info.version:04d} for {alias}: {info.size} rows, "
               f"model {info.model_id}, {info.path}")


@baseline_group.command("list")
@click.argument("alias", required=False)
@click.pass_context
def baseline_list(ctx: click.Context, alias: str | None) -> None:
    """List stored references (all aliases, or ALIAS)."""
    from .references import ReferenceStore

    refs = ReferenceStore(_settings(ctx).state.dir).list(alias)
    if not refs:
        click.echo("no references yet; capture one with `embguard baseline capture ALIAS`")
    for r in refs:
        click.echo(f"{r.alias}\t{r.kind}\tv{r.version:04d}\t{r.size} rows\t{r.model_id}\tage {r.age_s:.0f} s")


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
        for alias, st in daemon._collections.items():  # noqa: SLF001 - the CLI is part of the package
            click.echo(st.report.summary() if st.report else f"{alias}: not checked")
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


# --- demo ------------------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("--docs", default=600, show_default=True, type=click.IntRange(10, 5000),
              help="Passages to index.")
@click.option("--queries", default=200, show_default=True, type=click.IntRange(1, 5000),
              help="Known-answer queries for the quality check.")
@click.pass_context
def demo(ctx: click.Context, docs: int, queries: int) -> None:
    """Run the whole loop on the embedded default with no network, then stop everything it started."""
    from . import demo as demo_mod

    demo_mod.run(_settings(ctx), docs=docs, queries=queries, say=click.echo)


def main() -> None:
    cli(prog_name="embguard")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``embguard`` command's root group and the helpers every command module shares.

Library errors (``EmbguardError``) become one-line messages and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from embguard import __version__
from embguard.config import loader as config_mod
from embguard.config.credentials import redact_uri
from embguard.config.settings import CONFIG_ENV, Settings
from embguard.errors import EmbguardError

if TYPE_CHECKING:
    from embguard.milvus.milvus import Milvus


_SETTINGS = "embguard.settings"


class _Group(click.Group):
    """Turns library errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbguardError as exc:
            raise click.ClickException(redact_uri(str(exc))) from None
        except ModuleNotFoundError as exc:
            if "pip install" not in str(exc):  # only an optional extra's import site says how to install it
                raise
            raise click.ClickException(str(exc)) from None


def _settings(ctx: click.Context) -> Settings:
    """The settings, loaded on first use (so `config check FILE` can validate a file of its own)."""
    if _SETTINGS not in ctx.meta:  # ctx.meta is shared by every context of one invocation
        ctx.meta[_SETTINGS] = config_mod.load(ctx.find_root().obj)
    settings: Settings = ctx.meta[_SETTINGS]
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
    envvar=CONFIG_ENV,
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


def _milvus(ctx: click.Context) -> Milvus:
    from embguard.milvus.milvus import Milvus

    milvus = Milvus.connect(_settings(ctx))
    ctx.call_on_close(milvus.close)
    return milvus


F = TypeVar("F", bound=Callable[..., Any])


def collection_option(help: str, required: bool = False) -> Callable[[F], F]:
    """``-c/--collection ALIAS``: how every command names the watched collection (alias) it acts on."""
    return click.option("-c", "--collection", "collection", default=None, required=required, metavar="ALIAS", help=help)


def _collection_arg(
    ctx: click.Context, positional: str | None, option: str | None, *, required: bool = True
) -> str | None:
    """The collection a command acts on, from ``--collection`` or the deprecated positional NAME it replaces."""
    if positional is not None:
        if option is not None and option != positional:
            raise click.UsageError(
                f"the collection is named twice, {positional!r} (positional) and --collection {option!r}; "
                "pass only --collection",
                ctx,
            )
        click.echo(f"note: the positional collection name is deprecated; use `--collection {positional}`", err=True)
        return positional
    if option is None and required:
        raise click.UsageError("missing the collection: pass --collection ALIAS (-c ALIAS)", ctx)
    return option


def _refuse(ctx: click.Context, mode: str, **given: bool) -> None:
    """A usage error naming each flag in ``given`` that was passed but has no meaning in ``mode``."""
    bad = [name for name, passed in given.items() if passed]
    if bad:
        raise click.UsageError(f"{', '.join(bad)} does not apply to {mode}", ctx)

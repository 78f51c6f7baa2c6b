"""``embguard check``: one drift check now, with an exit code for scripts and on-call (0/1/2)."""

from __future__ import annotations

import json

import click

from embguard.cli._base import _settings, cli
from embguard.config.credentials import redact_uri
from embguard.errors import EmbguardError


@cli.command("check")
@click.option("--collection", default=None, help="Only this watched alias (default: every watched one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def check_cmd(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Check for drift now: the daemon's check job, once (no pruning, no retraining, nothing written).

    Exit code: 0 no drift, 1 drift, 2 no verdict (Milvus unreachable, unknown collection, no reference, too
    few queries, a failed check).
    """
    from embguard.daemon.check_jobs import check_now

    try:
        settings = _settings(ctx)
    except EmbguardError as exc:  # an unusable config is "no verdict" too, not "drift"
        click.echo(f"Error: {redact_uri(str(exc))}", err=True)
        ctx.exit(2)
    run = check_now(settings, collection)
    if as_json:
        click.echo(json.dumps(run.to_json(), indent=2, default=str))
    else:
        for line in run.lines():
            click.echo(line)
    ctx.exit(run.exit_code)

"""The ``embguard`` command: a thin shell over the library. The only package that imports click.

Each command parses its arguments, calls a plain function in ``embguard.cli.actions`` and echoes the lines it
returns. ``_base`` holds the root group and shared helpers; ``admin`` the set-up commands (config, lite,
collections, baselines, prune); ``loop`` the running loop (serve, status, models, retrain, rollback, gc,
labels, demo).
"""

from __future__ import annotations

from embguard.cli import admin, check, loop  # register their commands on the root group
from embguard.cli._base import cli

__all__ = ["cli", "main"]
_COMMAND_MODULES = (admin, check, loop)


def main() -> None:
    cli(prog_name="embguard")

"""The `amber` command line. Heavy imports stay inside commands to keep start-up fast.

Commands are grouped by concern in sibling modules (`cli_*.py`) that register
themselves on `app`; this module only assembles them.
"""

from __future__ import annotations

import json
from typing import Any

import typer

app = typer.Typer(name="amber", help="Durable execution for AI agent graphs on Kafka + PostgreSQL.",
                  no_args_is_help=True, add_completion=False)


def fail(e: Exception, code: int = 2) -> typer.Exit:
    """Say what went wrong on stderr; raise the returned Exit (`raise fail(e) from None`)."""
    typer.echo(f"error: {type(e).__name__}: {e}", err=True)
    return typer.Exit(code=code)


def print_json(value: Any) -> None:
    """Stable, readable JSON on stdout: what every --json option prints."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


@app.callback()
def _root() -> None:
    """Durable execution for AI agent graphs on Kafka + PostgreSQL."""


@app.command()
def version() -> None:
    """Print the engine version."""
    from engine.events import ENGINE_VERSION

    typer.echo(ENGINE_VERSION)


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    import importlib

    for name in ("cli_projection", "cli_engine", "cli_status", "cli_serve", "cli_audit",
                 "cli_replay"):
        try:
            importlib.import_module(f"consumers.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"consumers.{name}":
                raise


def main() -> None:
    _register()
    app()

"""The `amber` command line. Heavy imports stay inside commands to keep start-up fast."""

from __future__ import annotations

import typer

app = typer.Typer(name="amber", help="Durable execution for AI agent graphs on Kafka + PostgreSQL.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """Durable execution for AI agent graphs on Kafka + PostgreSQL."""


@app.command()
def version() -> None:
    """Print the engine version."""
    from engine.events import ENGINE_VERSION

    typer.echo(ENGINE_VERSION)


def main() -> None:
    app()

"""`amber serve`: the HTTP API (FastAPI on uvicorn). Imports stay lazy for a fast CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.cli import app, fail


@app.command()
def serve(host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8080,
          graph: Annotated[list[str], typer.Option(
              "--graph", "-g", help="MODULE:ATTR of a served graph (default: AMBER_GRAPHS)")]
          = [],  # noqa: B006 — typer reads the default
          log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning") -> None:
    """Serve the HTTP API: start threads on the workers, post decisions, read history."""
    import logging

    import uvicorn

    from consumers.api import app_from_env
    from engine.errors import AmberError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        api, cp = app_from_env(graph)
    except AmberError as e:
        raise fail(e) from None
    commands = api.state.commands
    if not api.state.auth_enabled:
        typer.echo("warning: neither AMBER_API_TOKENS nor AMBER_WEBHOOK_SECRET is set: "
                   "every authenticated endpoint answers 401", err=True)
    typer.echo(f"amber serve on http://{host}:{port} graphs={sorted(commands.graphs)}", err=True)
    try:
        uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        cp.close()

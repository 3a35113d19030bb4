"""`amber status`: what runs and how far behind it is."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.cli import app, print_json


@app.command()
def status(group: Annotated[str, typer.Option(help="projector group")] = "amber-projector",
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False
           ) -> None:
    """Events on the topic, projector lag, worker groups (members, lag)."""
    from consumers import status as st
    from consumers.checkpointer import event_log
    from engine.errors import AmberError
    from engine.settings import Settings

    settings = Settings.from_env()
    log = event_log(settings)
    try:
        ends = log.end_offsets()
        groups = [st.projector_group(settings, ends, group), *st.worker_groups(settings, ends)]
    except AmberError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    finally:
        log.close()
    report = st.as_json(ends, groups)
    if as_json:
        print_json(report)
        return
    typer.echo(f"topic {settings.events_topic}: {report['events']} events")
    for g in report["groups"]:
        members = "" if g["members"] is None else f", {g['members']} member(s)"
        typer.echo(f"{g['kind']:9} {g['group']}: lag {g['lag']}{members}")

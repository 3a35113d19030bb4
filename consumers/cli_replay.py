"""`amber replay`: today's graph asked to route every recorded step of a thread.

Reads the thread from the raw log (consumers/cli_audit.py) and compares each
recorded routing decision with today's (engine/replay.py). No node runs, so
nothing is sent, charged or written twice.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consumers.cli import app, fail, print_json

if TYPE_CHECKING:
    from engine.replay import RouteCheck


@app.command()
def replay(thread_id: str,
           graph: Annotated[list[str], typer.Option(
               "--graph", "-g", help="MODULE:ATTR of today's graph (default: AMBER_GRAPHS)",
           )] = [],  # noqa: B006 — typer reads the default
           from_seq: Annotated[int, typer.Option("--from-seq", help="first seq to check")] = 0,
           as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
           ) -> None:
    """Show where today's graph would route a thread differently; exit 1 if anywhere.

    The states come from the thread's raw records; only routers run.
    """
    from engine.errors import AmberError

    try:
        checks = _checks(thread_id, graph, from_seq)
    except AmberError as e:
        raise fail(e) from None
    if as_json:
        print_json(_json(thread_id, checks))
    else:
        typer.echo(_text(thread_id, checks))
    if not all(c.same for c in checks):
        raise typer.Exit(code=1)


def _checks(thread_id: str, refs: list[str], from_seq: int) -> list[RouteCheck]:
    from consumers.checkpointer import blobs
    from consumers.cli_audit import from_log
    from consumers.graphs import graph_for_thread
    from engine.replay import replay_routes
    from engine.settings import Settings

    view, audit = from_log(thread_id)
    today = graph_for_thread(view.graph, refs)
    with closing(blobs(Settings.from_env())) as texts:
        return replay_routes(today, [cp.event for cp in audit.accepted], from_seq=from_seq,
                             resolve=texts.resolved)


def _json(thread_id: str, checks: list[RouteCheck]) -> dict[str, Any]:
    return {"thread_id": thread_id, "same": all(c.same for c in checks),
            "steps": [{"seq": c.seq, "node": c.node, "recorded": c.recorded,
                       "today": c.today, "same": c.same} for c in checks]}


def _text(thread_id: str, checks: list[RouteCheck]) -> str:
    rows = [f"  seq {c.seq:>4}  {c.node or '(start)':<20} {c.recorded:<20} "
            f"{'same' if c.same else f'DIFFERS: today {c.today}'}" for c in checks]
    differ = sum(not c.same for c in checks)
    return "\n".join([f"{thread_id}: {len(checks)} routing decisions replayed with today's graph",
                      f"  {'':>8}  {'after node':<20} {'recorded next':<20} today", *rows,
                      f"{differ} would go differently today" if differ else
                      "today's graph routes every step as recorded"])

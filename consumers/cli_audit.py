"""`amber verify`, and the raw-log reads behind `amber state|history --from-log`.

An auditor need not trust the projection: these read the thread's records
straight from the topic and fold them with the acceptance rule
(engine/audit.py). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consumers.cli import app

if TYPE_CHECKING:
    from engine.audit import ThreadAudit
    from engine.checkpointer import Checkpointer
    from engine.eventlog import Delivery, EventLog

_WINDOW = 20_000  # offsets per read: a partition of millions is never held whole
_ROUNDS = 3  # a thread that keeps moving while it is verified is reported, not chased


@app.command()
def verify(thread_id: str,
           as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False) -> None:
    """Check a thread's projection against the raw log; exit 1 on any difference.

    The thread's records are read from the topic and folded with the
    acceptance rule; the head, every accepted and every rejected event must
    match what `amber state` and `amber history` show.
    """
    from consumers.checkpointer import AmberCheckpointer
    from engine.errors import AmberError
    from engine.settings import Settings

    try:
        settings = Settings.from_env()
        cp = AmberCheckpointer.from_settings(settings, ensure_topic=False, role="verify")
        try:
            audit, found = _verified(cp, thread_id)
        finally:
            cp.close()
    except AmberError as e:
        typer.echo(f"error: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(code=2) from None
    _report(audit, found, as_json)
    if found:
        raise typer.Exit(code=1)


def _verified(cp: Checkpointer, thread_id: str) -> tuple[ThreadAudit, list[str]]:
    """The log's view of the thread and the projection's differences from it.

    The projection is read after the log: if the thread moved in between, both
    are read again (the projection only ever runs ahead of a log read).
    """
    from engine.audit import differences
    from engine.projection import ThreadNotFoundError
    from engine.service import catch_up

    for _ in range(_ROUNDS):
        audit = audit_thread(cp.log, thread_id, end=catch_up(cp, thread_id))
        projected = _projected(cp, thread_id)
        if audit.view is None and projected[0] is None:
            raise ThreadNotFoundError(thread_id)
        found = differences(audit, *projected)
        logged = audit.view.head.seq if audit.view else -1
        current = cp.projection.get_thread(thread_id)
        if current is None or current.head.seq <= logged:
            return audit, found
    return audit, [*found, f"thread: still moving after {_ROUNDS} reads; verify it at rest"]


def _projected(cp: Checkpointer, thread_id: str) -> tuple[Any, list[Any], list[Any]]:
    history: list[Any] = []
    while page := cp.projection.history(thread_id, after_seq=history[-1].event.seq
                                        if history else -1, limit=1000):
        history += page
    return cp.projection.get_thread(thread_id), history, cp.projection.rejected(thread_id)


def audit_thread(log: EventLog, thread_id: str, *, end: int | None = None) -> ThreadAudit:
    """The thread as its records below `end` (default: the log's end) make it."""
    from engine.audit import ThreadAudit
    from engine.projection import LogFold

    partition = log.partition_of(thread_id)
    stop = log.end_offset(partition) if end is None else end
    return ThreadAudit.of(thread_id, LogFold().add_all(_records(log, thread_id, partition, stop)))


def _records(log: EventLog, thread_id: str, partition: int, end: int) -> Iterator[Delivery]:
    """The thread's records of `partition` below `end`, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"reading partition {partition}", total=end)
        for start in range(0, end, _WINDOW):
            stop = min(start + _WINDOW, end)
            yield from (d for d in log.read(partition, start, stop) if d.key == thread_id)
            bar.update(task, completed=stop)


def _report(audit: ThreadAudit, found: list[str], as_json: bool) -> None:
    view = audit.view
    if as_json:
        typer.echo(json.dumps({"thread_id": audit.thread_id, "ok": not found,
                               "head_seq": view.head.seq if view else None,
                               "head_hash": view.head.hash if view else None,
                               "accepted": len(audit.accepted), "rejected": len(audit.rejected),
                               "differences": found}, indent=2, sort_keys=True))
        return
    typer.echo(f"{audit.thread_id}: {len(audit.accepted)} accepted and {len(audit.rejected)} "
               f"rejected events on the log; head "
               f"{'none' if view is None else f'seq {view.head.seq} {view.head.hash}'}")
    for line in found:
        typer.echo(f"  DIFFERS {line}")
    typer.echo("projection matches the log" if not found else f"{len(found)} difference(s)")

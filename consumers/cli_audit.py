"""`amber verify`, and the raw-log reads behind `amber state|history --from-log`.

An auditor need not trust the projection: these read the thread's records
straight from the topic and fold them with the acceptance rule
(engine/log_audit.py). Heavy imports stay inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from consumers.cli import app, fail, print_json

if TYPE_CHECKING:
    from engine.audit import ThreadAudit
    from engine.checkpointer import Checkpointer
    from engine.ledger import ThreadView
    from engine.log_audit import TopicVerdict, Verdict

T = TypeVar("T")

_CLIENT_ID = "amber-audit"  # how these reads show in the broker's metrics


@app.command()
def verify(thread_id: Annotated[str | None, typer.Argument(
               help="one thread; without it, every thread on the topic")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False) -> None:
    """Check the projection against the raw log; exit 1 on any difference.

    Records are read from the topic and folded with the acceptance rule; each
    thread's head, accepted and rejected events must match what `amber state`
    and `amber history` show. Without a thread, each partition's undecodable
    records must also match the projection's dead letters.
    """
    if thread_id is None:
        _verify_all(as_json)
        return
    verdict = _guarded(lambda cp: _one(cp, thread_id))
    _say(_json(verdict) if as_json else _text(verdict))
    if verdict.differences:
        raise typer.Exit(code=1)


def _one(cp: Checkpointer, thread_id: str) -> Verdict:
    from engine.log_audit import verify as verify_thread

    with _progress() as on_progress:
        return verify_thread(cp, thread_id, on_progress=on_progress)


def _verify_all(as_json: bool) -> None:
    from engine.log_audit import verify_all

    def run(cp: Checkpointer) -> TopicVerdict:
        with _progress("reading the topic; each thread is compared after its partition"
                       ) as on_progress:
            return verify_all(cp, on_progress=on_progress)

    verdict = _guarded(run)
    _say(_all_json(verdict) if as_json else _all_text(verdict))
    if not verdict.ok:
        raise typer.Exit(code=1)


def from_log(thread_id: str) -> tuple[ThreadView, ThreadAudit]:
    """The thread from its raw records alone (no database); ThreadNotFoundError if none."""
    from consumers.checkpointer import event_log
    from engine.log_audit import audit_thread
    from engine.projection import ThreadNotFoundError
    from engine.settings import Settings

    log = event_log(Settings.from_env(), client_id=_CLIENT_ID)
    try:
        with _progress() as on_progress:
            audit = audit_thread(log, thread_id, on_progress=on_progress)
    finally:
        log.close()
    if audit.view is None:
        raise ThreadNotFoundError(thread_id)
    return audit.view, audit


@contextmanager
def _progress(what: str = "reading the thread's partition",
              ) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for reading the log (gone once done; none when piped)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _guarded(call: Callable[[Checkpointer], T]) -> T:
    """`call` on a checkpointer for this audit; an AmberError exits 2, saying what."""
    from consumers.checkpointer import AmberCheckpointer
    from engine.errors import AmberError
    from engine.settings import Settings

    try:
        with closing(AmberCheckpointer.from_settings(Settings.from_env(), ensure_topic=False,
                                                     role="audit", writes=False)) as cp:
            return call(cp)
    except AmberError as e:
        raise fail(e) from None


def _say(report: str | dict[str, Any]) -> None:
    """A text report as it is; a JSON one as every --json prints."""
    if isinstance(report, str):
        typer.echo(report)
    else:
        print_json(report)


def _json(verdict: Verdict) -> dict[str, Any]:
    audit, head = verdict.audit, verdict.audit.view
    return {"thread_id": audit.thread_id, "ok": not verdict.differences,
            "head_seq": head.head.seq if head else None,
            "head_hash": head.head.hash if head else None,
            "accepted": len(audit.accepted), "rejected": len(audit.rejected),
            "undecodable": audit.undecodable, "differences": verdict.differences}


def _all_json(verdict: TopicVerdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "threads": verdict.threads,
            "differing": verdict.differing, "rechecked": verdict.rechecked,
            "partitions": {str(p): found for p, found in verdict.partitions.items()}}


def _all_text(verdict: TopicVerdict) -> str:
    lines = [f"{thread}: DIFFERS {line}" for thread, found in verdict.differing.items()
             for line in found]
    lines += [f"partition {p}: DIFFERS {line}" for p, found in verdict.partitions.items()
              for line in found]
    return "\n".join([*lines, _all_summary(verdict)])


def _all_summary(verdict: TopicVerdict) -> str:
    summary = (f"{verdict.threads} threads checked ({len(verdict.rechecked)} again, alone, "
               f"as they moved meanwhile), {len(verdict.differing)} differ")
    if verdict.partitions:
        summary += f"; dead letters differ on {len(verdict.partitions)} partition(s)"
    return f"{summary}; the projection matches the log" if verdict.ok else summary


def _text(verdict: Verdict) -> str:
    audit, head = verdict.audit, verdict.audit.view
    lines = [f"{audit.thread_id}: {len(audit.accepted)} accepted, {len(audit.rejected)} "
             f"rejected and {audit.undecodable} undecodable records on the log; head "
             f"{'none' if head is None else f'seq {head.head.seq} {head.head.hash}'}",
             *(f"  DIFFERS {line}" for line in verdict.differences)]
    found = len(verdict.differences)
    return "\n".join([*lines, f"{found} difference(s)" if found else
                      "projection matches the log"])

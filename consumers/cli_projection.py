"""`amber projector | db migrate | state | history | threads`: the projection from the shell.

Read commands print a readable view by default and stable JSON with --json.
Heavy imports (psycopg, kafka, rich) stay inside the commands.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consumers.cli import app, fail, print_json

if TYPE_CHECKING:
    from engine.eventlog import EventLog
    from engine.events import Event
    from engine.ledger import ThreadView
    from engine.settings import Settings
    from projector.reader import PostgresProjectionReader
    from projector.runner import Progress

db_app = typer.Typer(help="The projection database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
FromLogOpt = Annotated[bool, typer.Option(
    "--from-log", help="fold the thread's raw records from the topic; no projection read")]
GroupOpt = Annotated[str, typer.Option("--group", help="projector group (one per database)")]
_DEFAULT_GROUP = "amber-projector"  # = projector.store.DEFAULT_GROUP, kept import-free here


def _settings() -> Settings:
    from engine.settings import Settings

    return Settings.from_env()


def _event_log(settings: Settings) -> EventLog:
    from consumers.checkpointer import event_log

    return event_log(settings, client_id="amber-projector")  # the AMBER_KAFKA_CLIENT adapter


def _reader(settings: Settings, group: str = _DEFAULT_GROUP) -> PostgresProjectionReader:
    from projector.reader import PostgresProjectionReader

    return PostgresProjectionReader(settings.database_url, topic=settings.events_topic,
                                    group=group)


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="milliseconds")


# --- reads -------------------------------------------------------------------------------

@app.command()
def state(thread_id: str,
          seq: Annotated[int | None, typer.Option("--seq", help="state after this seq")] = None,
          as_json: JsonOpt = False, from_log: FromLogOpt = False,
          texts: Annotated[bool, typer.Option("--texts", help="fill blob pointers with their "
                                              "texts, read from the blob topic")] = False,
          ) -> None:
    """Print a thread's state at its head, or after any earlier --seq (large texts as the
    log keeps them, blob pointers, unless --texts)."""
    from engine.errors import AmberError

    try:
        view, value = (_state_from_log if from_log else _state_from_projection)(thread_id, seq)
        if texts:
            value = _filled(value)
    except AmberError as e:
        raise fail(e) from None
    at = view.head.seq if seq is None else seq
    if as_json:
        print_json({"thread_id": thread_id, "seq": at, "status": view.status, "state": value})
        return
    from rich.console import Console
    from rich.json import JSON

    console = Console()
    console.print(f"[bold]{thread_id}[/] graph={view.graph} status={view.status} "
                  f"seq={at}/{view.head.seq}")
    console.print(JSON(json.dumps(value, sort_keys=True, ensure_ascii=False)))


def _filled(state: dict[str, Any]) -> dict[str, Any]:
    from consumers.checkpointer import blobs

    with closing(blobs(_settings())) as found:
        return found.resolved(state)


def _state_from_projection(thread_id: str, seq: int | None) -> tuple[ThreadView, Any]:
    reader = _reader(_settings())
    try:
        return reader.require(thread_id), reader.get_state(thread_id, seq)
    finally:
        reader.close()


def _state_from_log(thread_id: str, seq: int | None) -> tuple[ThreadView, Any]:
    from consumers.cli_audit import from_log

    view, audit = from_log(thread_id)
    return view, audit.state_at(seq)


@app.command()
def history(thread_id: str, as_json: JsonOpt = False, from_log: FromLogOpt = False) -> None:
    """Print a thread's accepted events (and any rejected ones) as a timeline."""
    from engine.errors import AmberError

    try:
        view, events, rejected = (_history_from_log if from_log
                                  else _history_from_projection)(thread_id)
    except AmberError as e:
        raise fail(e) from None
    if as_json:
        print_json({"thread_id": thread_id,
                     "events": [_event_json(e, p.partition, p.offset) for e, p in events],
                     "rejected": [{**_event_json(r.event, r.position.partition,
                                                 r.position.offset), "rejection": r.reason.value}
                                  for r in rejected]})
        return
    _print_timeline(view, [e for e, _ in events], rejected)


def _history_from_projection(thread_id: str) -> tuple[ThreadView, list[Any], list[Any]]:
    reader = _reader(_settings())
    try:
        return (reader.require(thread_id),
                [(cp.event, cp.position) for cp in reader.all_history(thread_id)],
                reader.rejected(thread_id))
    finally:
        reader.close()


def _history_from_log(thread_id: str) -> tuple[ThreadView, list[Any], list[Any]]:
    from consumers.cli_audit import from_log

    view, audit = from_log(thread_id)
    return view, [(cp.event, cp.position) for cp in audit.accepted], audit.rejected


def _event_json(event: Event, partition: int, offset: int) -> dict[str, Any]:
    return {**event.to_record(), "kafka_partition": partition, "kafka_offset": offset}


def _summary(event: Event) -> str:
    parts = [f"{op.get('op')} {op.get('field')}" for op in event.ops() if isinstance(op, dict)]
    if event.interrupt is not None:
        parts.append(f"interrupt {event.interrupt.id} ({event.interrupt.when})")
    if event.error is not None:
        parts.append(f"error {event.error.type}: {event.error.message}")
    if event.parent is not None:
        parts.append(f"fork of {event.parent.thread_id}@{event.parent.seq}")
    if event.reason:
        parts.append(f"reason: {event.reason}")
    return "; ".join(parts)


def _print_timeline(view: ThreadView, events: list[Event], rejected: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"history of {view.thread_id} ({view.graph}, {view.status})",
                  caption=f"[red]integrity error: {view.integrity_error}[/]"
                  if view.integrity_error else None)
    for column in ("seq", "occurred at (UTC)", "type", "node", "actor", "what"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(str(e.seq), _when(e.occurred_at), str(e.type), e.node or "",
                      e.actor or "", _summary(e))
    for r in rejected:
        table.add_row(f"[red]{r.event.seq}[/]", _when(r.event.occurred_at),
                      f"[red]{r.event.type}[/]", r.event.node or "", r.event.actor or "",
                      f"[red]REJECTED ({r.reason.value})[/] at {r.position.partition}/"
                      f"{r.position.offset}")
    console = Console()
    if not console.is_terminal:  # piped or in CI: 80 columns would fold every cell
        console = Console(width=140)
    console.print(table)


@app.command()
def threads(status: Annotated[str | None, typer.Option(help="running, interrupted, ...")] = None,
            graph: Annotated[str | None, typer.Option(help="graph name")] = None,
            limit: Annotated[int, typer.Option(help="page size")] = 50,
            offset: Annotated[int, typer.Option(help="rows to skip")] = 0,
            as_json: JsonOpt = False) -> None:
    """List threads, most recently updated first."""
    from engine.errors import AmberError

    try:
        reader = _reader(_settings())
        try:
            views = reader.list_threads(status=status, graph=graph, limit=limit, offset=offset)
        finally:
            reader.close()
    except AmberError as e:
        raise fail(e) from None
    if as_json:
        print_json([_view_json(v) for v in views])
        return
    _print_threads(views)


def _view_json(v: ThreadView) -> dict[str, Any]:
    return {"thread_id": v.thread_id, "graph": v.graph, "status": v.status,
            "head_seq": v.head.seq, "head_hash": v.head.hash, "mode": v.mode,
            "interrupt": None if v.interrupt is None else {
                "id": v.interrupt.id, "node": v.interrupt.node, "when": v.interrupt.when,
                "payload": json.loads(v.interrupt.payload)},
            "parent": None if v.parent is None else {
                "thread_id": v.parent.thread_id, "seq": v.parent.seq},
            "created_at": v.created_at, "updated_at": v.updated_at,
            "integrity_error": v.integrity_error}


def _print_threads(views: list[ThreadView]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(views)} thread(s)")
    for column in ("thread", "graph", "status", "seq", "updated (UTC)", "waiting at"):
        table.add_column(column)
    for v in views:
        status = v.status if not v.integrity_error else f"[red]{v.status} (integrity!)[/]"
        table.add_row(v.thread_id, v.graph, status, str(v.head.seq), _when(v.updated_at),
                      v.interrupt.node if v.interrupt else "")
    Console().print(table)


# --- schema and projector ----------------------------------------------------------------

@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the projection schema (safe to run concurrently)."""
    import psycopg

    from engine.errors import AmberError
    from projector.migrations import MIGRATIONS, migrate

    try:
        with psycopg.connect(_settings().database_url, autocommit=True) as conn:
            applied = migrate(conn)
    except (AmberError, psycopg.Error) as e:
        raise fail(e) from None
    typer.echo(f"schema at version {len(MIGRATIONS)}"
               + (f" (applied {applied})" if applied else " (already up to date)"))


@app.command()
def projector(group: GroupOpt = _DEFAULT_GROUP,
              once: Annotated[bool, typer.Option(
                  "--once", help="project up to the current end offsets, then exit")] = False,
              rebuild: Annotated[bool, typer.Option(
                  "--rebuild", help="drop the projection and replay the topic, then exit")] = False,
              follow: Annotated[bool, typer.Option(
                  "--follow", help="with --rebuild: keep projecting afterwards")] = False,
              lag: Annotated[bool, typer.Option(
                  "--lag", help="print per-partition lag and exit")] = False,
              batch_size: Annotated[int, typer.Option(help="records per transaction")] = 5000,
              wait_lock: Annotated[float, typer.Option(
                  help="seconds to wait for another instance of the group to exit")] = 0.0,
              log_json: Annotated[bool, typer.Option(help="log as JSON lines")] = False,
              verbose: Annotated[bool, typer.Option(
                  "--verbose", "-v", help="log every committed batch")] = False,
              as_json: JsonOpt = False) -> None:
    """Project the events topic into PostgreSQL (exactly once; resumes where it stopped)."""
    from engine.errors import AmberError

    try:
        settings = _settings()
        if lag:
            _print_lag(settings, group, as_json)
            return
        _configure_logging(log_json, logging.DEBUG if verbose else logging.INFO)
        _run_projector(settings, group=group, once=once, rebuild=rebuild, follow=follow,
                       batch_size=batch_size, wait_lock=wait_lock)
    except AmberError as e:
        from projector.errors import ProjectorBusyError

        raise fail(e, code=3 if isinstance(e, ProjectorBusyError) else 2) from None


def _run_projector(settings: Settings, *, group: str, once: bool, rebuild: bool, follow: bool,
                   batch_size: int, wait_lock: float) -> None:
    from projector.faults import FaultPlan
    from projector.runner import Projector, ProjectorConfig

    log = _event_log(settings)
    config = ProjectorConfig(group=group, batch_size=batch_size, lock_wait_s=wait_lock,
                             gather_ms=settings.projector_gather_ms,
                             cache_size=max(100_000, 4 * batch_size))
    stop = _stop_on_signals()
    try:
        with Projector(log=log, database_url=settings.database_url, config=config,
                       faults=FaultPlan.from_env()) as p:
            if rebuild or once:
                ends = log.end_offsets()
                with _ProgressBar("rebuilding" if rebuild else "catching up",
                                   p.positions, ends) as on_progress:
                    run = (p.rebuild if rebuild else p.catch_up)(on_progress, until=ends)
                print_json(_progress_json(run))
                if not follow:
                    return
            p.run(should_stop=lambda: stop["now"])
            logging.getLogger("amber.projector").info(
                "projector stopped", extra={"group": group, "positions": p.positions})
    finally:
        log.close()


def _stop_on_signals() -> dict[str, bool]:
    # The loop checks the flag between batches: a batch in flight commits first.
    stop = {"now": False}

    def handler(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _progress_json(p: Progress) -> dict[str, Any]:
    return {"records": p.records, "accepted": p.accepted, "rejected": p.rejected,
            "dead_letters": p.dead_letters, "batches": p.batches,
            "positions": {str(k): v for k, v in sorted(p.positions.items())}}


class _ProgressBar:
    """A rich progress bar on stderr over offsets from `start` to `ends`, with the rate."""

    def __init__(self, what: str, start: dict[int, int], ends: dict[int, int]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._what = what
        self._ends = ends
        self._base = self._done(start)
        self._started = time.monotonic()
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True))
        self._task = self._bar.add_task(what, total=max(self._done(ends) - self._base, 0))

    def _done(self, positions: dict[int, int]) -> int:
        return sum(min(positions.get(p, 0), end) for p, end in self._ends.items())

    def __enter__(self) -> Any:
        self._bar.start()
        return self._update

    def _update(self, progress: Progress) -> None:
        done = self._done(progress.positions) - self._base
        rate = done / max(time.monotonic() - self._started, 1e-6)
        self._bar.update(self._task, completed=done,
                         description=f"{self._what} {rate:>9,.0f} rec/s")

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


def _print_lag(settings: Settings, group: str, as_json: bool) -> None:
    log = _event_log(settings)
    reader = _reader(settings, group)
    try:
        ends = log.end_offsets()
        done = reader.projected_offsets()
    finally:
        reader.close()
        log.close()
    rows = [{"partition": p, "position": done.get(p, 0), "end": e,
             "lag": max(e - done.get(p, 0), 0)} for p, e in sorted(ends.items())]
    if as_json:
        print_json({"group": group, "topic": settings.events_topic, "partitions": rows,
                     "total_lag": sum(r["lag"] for r in rows)})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lag of group {group} on {settings.events_topic}")
    for column in ("partition", "position", "end", "lag"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(*(str(r[k]) for k in ("partition", "position", "end", "lag")))
    table.add_row("total", "", "", str(sum(r["lag"] for r in rows)))
    Console().print(table)


class _KeyValueFormatter(logging.Formatter):
    """`time level logger message key=value...`, or one JSON object per line."""

    _standard = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in self._standard}
        when = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        if self._json:
            return json.dumps({"ts": when, "level": record.levelname, "logger": record.name,
                               "msg": record.getMessage(), **extra}, default=str)
        fields = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in extra.items())
        return f"{when} {record.levelname} {record.name} {record.getMessage()} {fields}".rstrip()


def _configure_logging(as_json: bool, level: int) -> None:
    root = logging.getLogger()
    if not root.handlers:  # an embedding application (or pytest) keeps its own
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_KeyValueFormatter(as_json=as_json))
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("kafka", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

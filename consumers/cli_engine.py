"""`amber start | resume | edit | fork | cancel`: run threads inline from the command line.

Each is a short-lived process: it appends, runs what it can, and exits. The
resume path is what a webhook launches, so imports stay lazy. Each closes its
checkpointer before it exits: a process that exits with kafka-python's I/O
loop still running prints a traceback from that loop's teardown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Annotated, Any

import typer

from consumers.cli import app, fail, print_json

GraphOpt = Annotated[list[str], typer.Option("--graph", "-g", help="MODULE:ATTR of a compiled "
                                             "graph (default: AMBER_GRAPHS)")]


def _json_arg(raw: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"{what} is not JSON: {e}") from None


def _print_result(result: Any) -> None:
    out = {"thread_id": result.thread_id, "status": result.status, "seq": result.seq,
           "interrupt": result.interrupt,
           "error": None if result.error is None else result.error.message}
    print_json(out)


@app.command()
def start(graph: Annotated[str, typer.Argument(help="MODULE:ATTR of a compiled graph")],
          thread: Annotated[str, typer.Option("--thread", "-t", help="thread id")],
          input: Annotated[str, typer.Option("--input", "-i", help="JSON input")] = "{}",
          actor: Annotated[str | None, typer.Option(help="who starts it")] = None,
          on_workers: Annotated[bool, typer.Option("--on-workers", help="hand the thread to "
                                                   "`amber worker` instead of running it here")]
          = False) -> None:
    """Start a thread and run it inline until it completes or is interrupted."""
    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import load_graph
    from engine.errors import AmberError
    from engine.service import ThreadService

    values = _json_arg(input, "--input")
    try:
        compiled = load_graph(graph)
        with closing(AmberCheckpointer.from_env()) as cp:
            if on_workers:
                cursor = ThreadService(compiled, cp).start(thread, values, actor=actor,
                                                           mode="worker")
                print_json({"thread_id": thread, "status": "running", "seq": 0,
                            "mode": cursor.view.mode})
                return
            _print_result(compiled.start(thread, values, actor=actor, checkpointer=cp))
    except AmberError as e:
        raise fail(e) from None


@app.command()
def resume(thread_id: str,
           value: Annotated[str, typer.Option("--value", help="the decision, as JSON")],
           actor: Annotated[str, typer.Option(help="who decided")] = "cli",
           interrupt_id: Annotated[str | None, typer.Option(help="the interrupt answered")] = None,
           reason: Annotated[str | None, typer.Option(help="why")] = None,
           graph: GraphOpt = []) -> None:  # noqa: B006 — typer reads the default
    """Record a human decision on an interrupted thread and continue it inline."""
    decision = _json_arg(value, "--value")
    _on_thread(thread_id, graph, lambda app_graph, cp: app_graph.resume(
        thread_id, decision, actor=actor, interrupt_id=interrupt_id, reason=reason,
        checkpointer=cp))


@app.command()
def edit(thread_id: str,
         values: Annotated[str, typer.Option("--values", help="state update, as JSON")],
         as_node: Annotated[str | None, typer.Option("--as-node",
                                                     help="apply as this node")] = None,
         actor: Annotated[str, typer.Option(help="who edits")] = "cli",
         reason: Annotated[str | None, typer.Option(help="why")] = None,
         graph: GraphOpt = []) -> None:  # noqa: B006 — typer reads the default
    """Append StateEdited: change a thread's state as if NODE had returned VALUES."""
    update = _json_arg(values, "--values")
    _on_thread(thread_id, graph, lambda app_graph, cp: app_graph.update_state(
        thread_id, update, as_node=as_node, actor=actor, reason=reason, checkpointer=cp))


@app.command()
def cancel(thread_id: str,
           actor: Annotated[str, typer.Option(help="who cancels")] = "cli",
           reason: Annotated[str | None, typer.Option(help="why")] = None,
           graph: GraphOpt = []) -> None:  # noqa: B006 — typer reads the default
    """Append ThreadCancelled: stop the thread for good, waiting or not."""
    _on_thread(thread_id, graph, lambda app_graph, cp: app_graph.cancel(
        thread_id, actor=actor, reason=reason, checkpointer=cp))


@app.command()
def fork(thread_id: Annotated[str, typer.Argument(help="the thread to fork")],
         seq: Annotated[int, typer.Option("--seq", help="the checkpoint to go on from")],
         new_thread: Annotated[str, typer.Option("--thread", "-t", help="the fork's id")],
         actor: Annotated[str, typer.Option(help="who forks")] = "cli",
         reason: Annotated[str | None, typer.Option(help="why")] = None,
         graph: GraphOpt = []) -> None:  # noqa: B006 — typer reads the default
    """Start thread --thread from checkpoint SEQ of THREAD_ID, going on as THREAD_ID would
    have from there (it waits if THREAD_ID was waiting), and run it inline."""
    _on_thread(thread_id, graph, lambda app_graph, cp: app_graph.fork(
        thread_id, seq, new_thread, actor=actor, reason=reason, checkpointer=cp))


def _on_thread(thread_id: str, graph: list[str], call: Callable[[Any, Any], Any]) -> None:
    """Print where call(the thread's graph, a checkpointer) left the thread; an AmberError
    exits 2, saying what."""
    from engine.errors import AmberError

    try:
        with _thread_graph(thread_id, graph) as (cp, app_graph):
            _print_result(call(app_graph, cp))
    except AmberError as e:
        raise fail(e) from None


@contextmanager
def _thread_graph(thread_id: str, graph: list[str]) -> Iterator[tuple[Any, Any]]:
    """A checkpointer on an existing topic (closed on the way out) and the thread's graph."""
    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import graph_for_thread
    from engine.service import thread_graph
    from engine.settings import Settings

    with closing(AmberCheckpointer.from_settings(Settings.from_env(), ensure_topic=False)) as cp:
        yield cp, graph_for_thread(thread_graph(cp, thread_id).graph, graph)


@app.command()
def worker(graphs: Annotated[list[str], typer.Argument(help="MODULE:ATTR of compiled graphs")],
           group: Annotated[str | None, typer.Option(help="consumer group (default: derived "
                                                      "from the graph names)")] = None) -> None:
    """Run a worker: execute the next step of worker threads of GRAPHS, until SIGTERM."""
    import logging

    from consumers.checkpointer import AmberCheckpointer
    from consumers.graphs import load_graph
    from consumers.group import GroupOptions, group_consumer
    from consumers.worker import Worker, group_id_for, install_signal_handlers, poll_interval_ms
    from engine.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    compiled = {g.name: g for g in (load_graph(ref) for ref in graphs)}
    cp = AmberCheckpointer.from_settings(settings, role="worker")
    cp.log.check_partitions()  # before joining the group: fail here, plainly
    chosen = group or group_id_for(compiled, settings.topic_prefix)
    consumer = group_consumer(settings, GroupOptions(
        bootstrap=settings.kafka_bootstrap, group=chosen, topic=settings.events_topic,
        partitions=settings.partitions,
        max_poll_interval_ms=poll_interval_ms(compiled.values(), settings.worker_batch_s)))
    w = Worker(graphs=compiled, cp=cp, consumer=consumer, group=chosen,
               batch_s=settings.worker_batch_s)
    install_signal_handlers(w)
    typer.echo(f"worker in group {chosen} serving {sorted(compiled)}", err=True)
    try:
        w.run()
    finally:
        cp.close()

"""`amber <args>` as a fresh process, with timestamps of its first network requests.

Used by bench/inline.py to time the cold start of `amber resume` (what a
webhook launches). It behaves exactly like the `amber` console script, plus
an audit hook (no import cost) that notes the wall-clock time of the first
connect to the Kafka bootstrap port and to the PostgreSQL port, and writes
them as JSON to $AMBER_BENCH_MARKS at exit. kafka-python connects through
Python's socket module, so its connects are seen; libpq's and librdkafka's
are not (C code), so the PostgreSQL mark is the first `psycopg` connection
attempt and, under AMBER_KAFKA_CLIENT=confluent, the Kafka mark is the
creation of the first librdkafka client (which connects at once, on its own
threads).
"""

import json
import os
import sys
import time

T_SCRIPT = time.time()
# Like the `amber` console script, whose sys.path[0] is the venv's bin/: drop this
# directory from the path, so none of its modules can shadow a top-level package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]
_marks: dict[str, float] = {"script_start": T_SCRIPT}
_kafka_port = int(os.environ.get("AMBER_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
                  .split(",")[0].rsplit(":", 1)[-1])
_CUT = os.environ.get("AMBER_BENCH_CUT", "")  # written to stderr at the first Kafka connect


def _kafka_mark() -> None:
    if "first_kafka_connect" not in _marks:
        _marks["first_kafka_connect"] = time.time()
        _marks["first_kafka_connect_cpu"] = time.process_time()  # CPU since exec
        if _CUT:
            sys.stderr.write(f"{_CUT}\n")


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect" and "first_kafka_connect" not in _marks:
        addr = args[1]
        if isinstance(addr, tuple) and len(addr) >= 2 and addr[1] == _kafka_port:
            _kafka_mark()
    elif event == "import" and args[0] == "psycopg" and "psycopg_import" not in _marks:
        _marks["psycopg_import"] = time.time()


def _note_pg() -> None:
    # Wrap psycopg.Connection.connect once psycopg is imported by the command itself.
    import psycopg

    original = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def connect(cls: type, *a: object, **kw: object) -> object:
        _marks.setdefault("first_postgres_connect", time.time())
        return original(cls, *a, **kw)

    psycopg.Connection.connect = classmethod(connect)  # type: ignore[method-assign,assignment]


def _note_librdkafka() -> None:
    # The adapter looks its client classes up as module globals when it builds
    # one: swap in subclasses that take the mark when constructed. (Not in
    # confluent_kafka itself: its classes call super(TheirName, self).)
    adapter = sys.modules["engine.eventlog_confluent"]

    def marking(base: type) -> type:
        class Marked(base):  # type: ignore[valid-type,misc]
            def __init__(self, *a: object, **kw: object) -> None:
                _kafka_mark()
                super().__init__(*a, **kw)
        return Marked

    for name in ("Producer", "Consumer", "AdminClient"):
        setattr(adapter, name, marking(getattr(adapter, name)))


# module -> (an attribute it has once fully imported, the hook to run then)
_SPIED = {"psycopg": ("Connection", _note_pg),
          "engine.eventlog_confluent": ("ConfluentEventLog", _note_librdkafka)}


def main() -> int:
    sys.addaudithook(_hook)
    sys.argv = ["amber", *sys.argv[1:]]
    from consumers.cli import main as amber_main

    code = 0
    try:
        _spy_imports()
        amber_main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        _marks["main_returned"] = time.time()
        _marks["main_returned_cpu"] = time.process_time()
        path = os.environ.get("AMBER_BENCH_MARKS")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(_marks, f)
    return code


def _spy_imports() -> None:
    """Run each _SPIED hook once its module is imported (at once if it already is)."""
    import builtins

    pending = dict(_SPIED)
    real_import = builtins.__import__

    def ready(name: str) -> bool:  # imported, and not half-way (a circular import)
        return hasattr(sys.modules.get(name), pending[name][0])

    for name in [n for n in pending if ready(n)]:
        pending.pop(name)[1]()

    def spy(name: str, *a: object, **kw: object) -> object:
        module = real_import(name, *a, **kw)  # type: ignore[arg-type]
        if name in pending and ready(name):
            pending.pop(name)[1]()
            if not pending:
                builtins.__import__ = real_import
        return module

    if pending:
        builtins.__import__ = spy  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())

"""The ``mlxbench`` command: ``run | list | workloads | report | compare | profile | env``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)``
and ``main(args) -> int``; modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager, suppress

import mlxbench
from mlxbench.errors import INTERNAL_ERROR, UserError
from mlxbench.options import OneLineParser

COMMANDS = {
    "run": ("mlxbench.commands.run", "run a suite: every case in its own process"),
    "list": ("mlxbench.commands.list", "list suites and the cases they expand to"),
    "workloads": ("mlxbench.commands.workloads", "list the workloads, or one workload's parameters"),
    "report": ("mlxbench.commands.report", "render a run's records as HTML, Markdown or CSV"),
    "compare": ("mlxbench.commands.compare", "compare two runs; exit 1 on a significant regression"),
    "profile": ("mlxbench.commands.profile", "run a Python script under the memory profiler"),
    "env": ("mlxbench.commands.env", "show the environment every run records, with a calibration"),
    "estimate": ("mlxbench.commands.estimate", "estimate a case's peak memory; calibrate the estimate from a run"),
    "fit": ("mlxbench.commands.fit", "find the fastest configuration whose measured peak fits a memory budget"),
    "db": ("mlxbench.commands.db", "store run folders in the results database (SQLite or PostgreSQL)"),
    "history": ("mlxbench.commands.history", "measure a workload at each of your commits, rounds interleaved"),
    "bisect": ("mlxbench.commands.bisect", "find the first commit where a figure got worse"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mlxbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlxbench {mlxbench.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as done:  # --help, --version (0) or a usage error, already said in one line (2)
        return done.code if isinstance(done.code, int) else 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        with _stopped_by_signals():
            return int(module.main(args) or 0)
    except UserError as err:
        print(f"mlxbench: {err}", file=sys.stderr)
        return UserError.exit_status
    except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM or SIGHUP, once every finally block has cleaned up
        signum = getattr(stop, "signum", signal.SIGINT)
        name = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        with suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"mlxbench: {name}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader of our output went away (| head): not a failure of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # the machine refused (permissions, disk): the user's to fix, not a bug
        _traceback_if_asked()
        print(f"mlxbench: {f'{err.filename}: ' if err.filename else ''}{err.strerror or err}", file=sys.stderr)
        return UserError.exit_status
    except Exception as err:  # anything else is a bug: never exit 1, which means a verdict
        _traceback_if_asked()
        first = (str(err).strip().splitlines() or [""])[0][:300]
        print(f"mlxbench: internal error: {type(err).__name__}: {first} "
              "(a bug; please report it with the traceback: MLXBENCH_TRACEBACK=1)", file=sys.stderr)
        return INTERNAL_ERROR


class Stopped(KeyboardInterrupt):
    """This process was told to stop by a signal; raised where it was, so cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _stop(signum: int, frame) -> None:
    for sig in STOP_SIGNALS:  # the first one stops; later ones must not cut the cleanup short
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def _stopped_by_signals():
    """SIGINT, SIGTERM and SIGHUP (CI cancelling, ``timeout``, ``docker stop``, a closed terminal) raise Stopped.

    A signal already ignored (``nohup``, a background job's SIGINT) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig, handler in previous.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(sig, _stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _traceback_if_asked() -> None:
    if os.environ.get("MLXBENCH_TRACEBACK") == "1":
        traceback.print_exc()


if __name__ == "__main__":
    raise SystemExit(main())

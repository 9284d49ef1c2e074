"""``mlxbench profile -- python my_script.py [args]``, or ``mlxbench profile -m module [args]`` (``-m
mlx_lm generate --model …``, as Python runs a module): run it under the memory profiler.

The script or module runs in this process (so the sampler sees its MLX memory), with
``sys.argv`` set as if Python had started it. Afterwards ``OUT/profile.json``
holds the timeline, phases, MLX's exact peak, the peak RSS and what the OS counted (``memory``:
process and system layers, and whether the process diverged from MLX's peak), and
``OUT/profile.html`` shows them. A script can name its phases with
``mlxbench.machine.profiler.mark_phase("name")``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import runpy
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.results import units

MIN_POINTS = 10  # the downsampler keeps the first, the last and each series' peak
TIMED_OUT = 124  # as timeout(1) exits
PYTHON_NAMES = ("python", "python3", Path(sys.executable).name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval-s", type=options.number(0, 60, "a number of seconds", above=True), default=0.01,
                        help="seconds between samples (default 0.01)")
    parser.add_argument("--out", type=options.non_empty, default=None,
                        help="output folder (default profiles/<script>-<time>)")
    parser.add_argument("--max-points", type=options.whole_number(MIN_POINTS, 10_000_000, "a number of points"),
                        default=2000, help=f"timeline points kept, peaks included (at least {MIN_POINTS})")
    parser.add_argument("--timeout", type=options.seconds, default=None, metavar="SECONDS",
                        help="stop the script after this many seconds (exit 124), its profile kept (default: none)")
    parser.add_argument("-m", dest="module_command", nargs=argparse.REMAINDER, metavar="MODULE [ARGS]",
                        help="run a module as `python -m MODULE ARGS` does (e.g. -m mlx_lm generate --model …)")
    parser.add_argument("script_command", nargs=argparse.REMAINDER, metavar="-- [python] SCRIPT [ARGS]",
                        help="the script to run and its arguments (or: -- python -m MODULE ARGS)")


def script_and_args(command: list[str]) -> tuple[Path | str, list[str]]:
    """The script path (or a module's name, as a str) and its arguments from
    ``[--] [python] SCRIPT [ARGS]`` or ``[--] [python] -m MODULE [ARGS]``."""
    words = list(command)
    if words and words[0] == "--":
        words.pop(0)
    if words and Path(words[0]).name in PYTHON_NAMES:
        words.pop(0)
    if not words:
        raise UserError("profile: expected a script to run (mlxbench profile -- python my_script.py), got none")
    if words[0] == "-m":
        return module_and_args(words[1:])
    if words[0].startswith("-"):
        raise UserError(f"profile: expected a script path, got the Python option {words[0]!r}")
    script = Path(words[0])
    if not script.is_file():
        raise UserError(f"{script}: expected a Python script, got no such file")
    return script, words[1:]


def module_and_args(words: list[str]) -> tuple[str, list[str]]:
    """A module's name and its arguments from ``MODULE [ARGS]``; UserError if it cannot be found."""
    if not words or not words[0] or words[0].startswith("-"):
        raise UserError("profile: -m: expected a module name (mlxbench profile -m mlx_lm generate …), got "
                        f"{words[0] if words else 'none'!r}")
    name = words[0]
    sys.path.insert(0, os.getcwd())  # as `python -m` looks in the current directory first
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError) as err:
        raise UserError(f"profile: -m {name}: expected an importable module, got {err}") from None
    finally:
        sys.path.pop(0)
    if not found:
        raise UserError(f"profile: -m {name}: expected an importable module, got no module named {name!r}")
    return name, words[1:]


class ScriptTimedOut(BaseException):
    """--timeout passed: raised in the script where it was (a BaseException, so its own handlers pass it on)."""


def _time_out(signum, frame) -> None:
    raise ScriptTimedOut()


def run_script(script: Path | str, args: list[str], timeout_s: float | None = None) -> int:
    """Run ``script`` (a path, or a module's name as a str) as ``__main__`` with ``args``; its exit
    status (1 and a traceback if it raised, 124 if it ran past ``timeout_s``)."""
    if timeout_s is not None:
        signal.signal(signal.SIGALRM, _time_out)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return _run_script(script, args)
    except ScriptTimedOut:
        print(f"mlxbench: profile: stopped the script after --timeout {timeout_s:g} s", file=sys.stderr)
        return TIMED_OUT
    finally:
        if timeout_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _run_script(script: Path | str, args: list[str]) -> int:
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args]
    # Where `python script.py` or `python -m module` would look first.
    sys.path.insert(0, os.getcwd() if isinstance(script, str) else str(script.resolve().parent))
    try:
        if isinstance(script, str):
            runpy.run_module(script, run_name="__main__", alter_sys=True)  # sets sys.argv[0] as -m does
        else:
            runpy.run_path(str(script), run_name="__main__")
        return 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except Exception as err:
        print_script_traceback(err, script)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def print_script_traceback(err: BaseException, script: Path | str) -> None:
    """Print the traceback from the script's own frames on (mlxbench's and runpy's are noise)."""
    tb = err.__traceback__
    noise = {Path(__file__).resolve(), Path(runpy.__file__).resolve()}
    while tb is not None and (Path(tb.tb_frame.f_code.co_filename) != script if isinstance(script, Path)
                              else Path(tb.tb_frame.f_code.co_filename).resolve() in noise):
        tb = tb.tb_next
    traceback.print_exception(type(err), err, tb or err.__traceback__)


def main(args: argparse.Namespace) -> int:
    from mlxbench.machine import env
    from mlxbench.machine.profiler import mark_phase, profile_memory

    if args.module_command is not None:
        script, script_args = module_and_args(args.module_command)
    else:
        script, script_args = script_and_args(args.script_command)
    stem = script.replace(".", "_") if isinstance(script, str) else script.stem
    out = Path(args.out or Path("profiles") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")

    started, pid = time.perf_counter(), os.getpid()
    with profile_memory(interval_s=args.interval_s) as prof:
        mark_phase("script")
        status = run_script(script, script_args, args.timeout)
        if os.getpid() != pid:  # a child the script forked came back here: only the parent writes the profile
            sys.stdout.flush()
            os._exit(status & 0xFF)
    profile = {
        "script": str(script),
        "command": shlex.join(["mlxbench", "profile", *(["-m", script] if isinstance(script, str) else
                                                        ["--", "python", str(script)]), *script_args]),
        "argv": script_args,
        "exit_status": status,
        "duration_s": time.perf_counter() - started,
        **prof.to_dict(max_points=args.max_points),
        "env": env.capture(calibrate=False),
    }
    write_profile(out, profile)
    print(f"mlxbench: peak {units.mb(profile['peak_bytes'])} MB MLX, "
          f"{units.mb(profile['peak_rss_bytes'])} MB RSS; wrote {out / 'profile.json'} and profile.html",
          file=sys.stderr)
    if (divergence := (prof.memory or {}).get("divergence") or {}).get("flagged"):
        print(f"mlxbench: {divergence['detail']}", file=sys.stderr)
    return status


def write_profile(out: Path, profile: dict) -> None:
    """Write ``profile.json`` and ``profile.html`` (the report's profile page) into ``out``."""
    from mlxbench.report.html import render_profile

    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(profile, indent=1, default=str))
    (out / "profile.html").write_text(render_profile(profile))

"""``mlxbench profile -- python my_script.py [args]``: run a script under the memory profiler.

The script runs in this process (so the sampler sees its MLX memory), with
``sys.argv`` set as if Python had started it. Afterwards ``OUT/profile.json``
holds the timeline, phases, MLX's exact peak and the peak RSS, and
``OUT/profile.html`` shows them. A script can name its phases with
``mlxbench.profiler.mark_phase("name")``.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
import traceback
from pathlib import Path

from mlxbench.errors import UserError

PYTHON_NAMES = ("python", "python3", Path(sys.executable).name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval-s", type=float, default=0.01, help="seconds between samples (default 0.01)")
    parser.add_argument("--out", default=None, help="output folder (default profiles/<script>-<time>)")
    parser.add_argument("--max-points", type=int, default=2000, help="timeline points kept, peaks included")
    parser.add_argument("script_command", nargs=argparse.REMAINDER, metavar="-- [python] SCRIPT [ARGS]",
                        help="the script to run and its arguments")


def script_and_args(command: list[str]) -> tuple[Path, list[str]]:
    """The script path and its arguments from ``[--] [python] SCRIPT [ARGS]``."""
    words = list(command)
    if words and words[0] == "--":
        words.pop(0)
    if words and Path(words[0]).name in PYTHON_NAMES:
        words.pop(0)
    if not words:
        raise UserError("profile: expected a script to run (mlxbench profile -- python my_script.py), got none")
    if words[0].startswith("-"):
        raise UserError(f"profile: expected a script path, got the Python option {words[0]!r}")
    script = Path(words[0])
    if not script.is_file():
        raise UserError(f"{script}: expected a Python script, got no such file")
    return script, words[1:]


def run_script(script: Path, args: list[str]) -> int:
    """Run ``script`` as ``__main__`` with ``args``; its exit status (1 and a traceback if it raised)."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.resolve().parent))  # as `python script.py` would
    try:
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


def print_script_traceback(err: BaseException, script: Path) -> None:
    """Print the traceback from the script's own frames on (mlxbench's and runpy's are noise)."""
    tb = err.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename) != script:
        tb = tb.tb_next
    traceback.print_exception(type(err), err, tb or err.__traceback__)


def main(args: argparse.Namespace) -> int:
    from mlxbench.machine import env
    from mlxbench.machine.profiler import mark_phase, profile_memory

    script, script_args = script_and_args(args.script_command)
    if not args.interval_s > 0:
        raise UserError(f"--interval-s: expected a number > 0, got {args.interval_s}")
    out = Path(args.out or Path("profiles") / f"{script.stem}-{time.strftime('%Y%m%d-%H%M%S')}")

    started = time.perf_counter()
    with profile_memory(interval_s=args.interval_s) as prof:
        mark_phase("script")
        status = run_script(script, script_args)
    profile = {
        "script": str(script),
        "argv": script_args,
        "exit_status": status,
        "duration_s": time.perf_counter() - started,
        **prof.to_dict(max_points=args.max_points),
        "env": env.capture(calibrate=False),
    }
    write_profile(out, profile)
    print(f"mlxbench: peak {profile['peak_bytes'] / 2**20:.1f} MiB MLX, "
          f"{profile['peak_rss_bytes'] / 2**20:.1f} MiB RSS; wrote {out / 'profile.json'} and profile.html",
          file=sys.stderr)
    return status


def write_profile(out: Path, profile: dict) -> None:
    """Write ``profile.json`` and ``profile.html`` (the report's profile page) into ``out``."""
    from mlxbench.report.html import render_profile

    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(profile, indent=1, default=str))
    (out / "profile.html").write_text(render_profile(profile))

"""A user's workload module is first imported in a child process, so that whatever its import does that
mlxbench cannot catch — waits forever, forks, ends the process with ``os._exit``, crashes the interpreter —
is refused in one line naming the module, instead of hanging, duplicating or ending the runner.

What the import raises (an exception, a SyntaxError, ``sys.exit``) is left to the import in this process,
which names the user's file and line (``workloads._user_module``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

TIMEOUT_S = float(os.environ.get("MLXBENCH_IMPORT_TIMEOUT_S", "120"))
_CHILD = """
import importlib, os, sys
sys.path[:0] = sys.argv[2:]
forked = []
os.register_at_fork(after_in_parent=lambda: forked.append(1), after_in_child=lambda: os._exit(0))
try:
    importlib.import_module(sys.argv[1])
except BaseException:
    print("raised", flush=True)  # the import in mlxbench says what and where
else:
    print("forked" if forked else "imported", flush=True)
"""


def probe(module: str, spec: str, search_path: tuple[str, ...]) -> None:
    """Import ``module`` in a child first; LookupError when its import cannot be contained in this process."""
    try:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, module, *search_path], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                                 start_new_session=True)
    except OSError as err:
        raise LookupError(f"{spec}: could not start a process to import it in ({err})") from None
    try:
        said, _ = child.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        said = None
    finally:
        _end_group(child.pid)
        child.wait()
    verdict = (said or "").strip().splitlines()[-1:] or [""]
    if verdict[0] in ("imported", "raised"):
        return
    if said is None:
        raise LookupError(f"{spec}: importing it did not end within {TIMEOUT_S:g} s (a module must not wait "
                          f"or loop when imported; MLXBENCH_IMPORT_TIMEOUT_S raises the limit)")
    if verdict[0] == "forked":
        raise LookupError(f"{spec}: importing it forked a process (a workload module must not start processes "
                          f"when imported: start them in setup())")
    code = child.returncode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"ended the process with status {code}"
    raise LookupError(f"{spec}: importing it {how} before the import finished (os._exit or a crash)")


def _end_group(pid: int) -> None:
    """Whatever the import left running in the child's session goes with it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

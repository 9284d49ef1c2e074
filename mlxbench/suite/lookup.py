"""Find the workload class a suite names: a shipped one by name, or a user's ``module:Class``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

from mlxbench import workloads
from mlxbench.suite.source import did_you_mean
from mlxbench.workloads.base import Workload


def workload_class(spec: str, search_path: tuple[str, ...] = ()) -> type[Workload]:
    """The workload a suite names: a shipped one (``train``) or ``module:Class`` from the user.

    ``module`` is imported from sys.path, then from the ``search_path`` directories
    (the suite's own directory). LookupError says why it could not be found.
    """
    if ":" not in spec:
        try:
            return workloads.get(spec)
        except KeyError:
            raise LookupError(f"expected one of {', '.join(workloads.names())} or 'module:Class', "
                              f"got {spec!r}{did_you_mean(spec, workloads.names())}") from None
    module_name, _, class_name = spec.partition(":")
    if not module_name.strip() or not class_name.strip():
        raise LookupError(f"expected 'module:Class' with both named, got {spec!r}")
    for directory in search_path:
        if directory not in sys.path:
            sys.path.append(directory)
    module = _import_user_module(module_name, spec)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Workload)):
        raise LookupError(f"expected a Workload subclass {class_name!r} in module {module_name!r}, got "
                          f"{'nothing' if cls is None else type(cls).__name__}")
    return cls


def _import_user_module(module_name: str, spec: str):
    """Import the user's module; whatever its import does (raise, a SyntaxError, ``sys.exit``) is a
    LookupError naming the user's file and line, never an exit of mlxbench or a bug of its own."""
    try:
        return importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as err:
        if err.name and (module_name + ".").startswith(err.name + "."):  # the module itself, not one it imports
            raise LookupError(f"expected an importable module, got {spec!r} ({err})") from None
        raise LookupError(f"{spec}: importing it failed: {_where(err, module_name)}") from None
    except BaseException as err:  # noqa: BLE001 - user code may raise anything, SystemExit included
        raise LookupError(f"{spec}: importing it failed: {_where(err, module_name)}") from None


def _where(err: BaseException, module_name: str) -> str:
    """``file:line: Type: message`` for an error raised while importing the user's module, at the
    user's own line when one is on the stack."""
    if isinstance(err, SyntaxError):
        return f"{err.filename}:{err.lineno}: SyntaxError: {err.msg}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<frozen")]
    try:
        origin = getattr(importlib.util.find_spec(module_name), "origin", None)
    except (ImportError, ValueError):
        origin = None
    mine = [f for f in frames if f.filename == origin] or frames
    at = f"{mine[-1].filename}:{mine[-1].lineno}: " if mine else ""
    what = f"exited with status {err.code!r} at import" if isinstance(err, SystemExit) else type(err).__name__
    message = (str(err).strip().splitlines() or [""])[0][:200] if not isinstance(err, SystemExit) else ""
    return f"{at}{what}{f': {message}' if message else ''}"

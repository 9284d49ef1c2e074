"""Importing a user's workload module: whatever its import does (raise, a SyntaxError, ``sys.exit``) is a
LookupError naming the user's file and line, never an exit of mlxbench or a bug of its own."""

from __future__ import annotations

import importlib
import importlib.util
import traceback


def import_user_module(module_name: str, spec: str):
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

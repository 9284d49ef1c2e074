"""YAML and the files a user names read with bounds, so that no read or walk over what they stand for can
blow up or hang: a file must be a regular one (a FIFO would block, /dev/zero never end) of a bounded size.

An alias bomb (each level nine aliases of the last) or nesting thousands deep is
refused in one line before anything walks the value: suite files, ``--set`` values
and the suite a run folder stores all go through :func:`parse_yaml`.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
from typing import Any

import yaml

from mlxbench.errors import UserError

# Bounds on what a YAML text may stand for.
MAX_VALUES = 100_000
MAX_DEPTH = 100
TOO_DEEP = f"expected YAML nested at most {MAX_DEPTH} deep, got deeper"
MAX_FILE_BYTES = 64 * 2**20  # a suite, a hostfile, a baseline: far below; a records file is streamed instead
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike, what: str = "a file"):
    """``path`` opened for reading in binary, once it is known to be a regular file: opening never blocks
    (a FIFO with no writer would), and a FIFO, device, directory or symlink loop is a UserError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        got = "a symlink loop" if err.errno == errno.ELOOP else err.strerror or str(err)
        raise UserError(f"{path}: expected {what}, got {got}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
        raise UserError(f"{path}: expected {what}, got {kind}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_text(path: str | os.PathLike, what: str = "a file", max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; anything else is a UserError."""
    with open_regular(path, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UserError(f"{path}: expected {what} of at most {max_bytes // 2**20} MiB, got more")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: expected {what}, got bytes that are not UTF-8") from None


def parse_yaml(text: str, where: str, lines: bool = True) -> tuple[Any, yaml.Node | None]:
    """The value of a YAML text and its composed node, parsed once. A syntax error, nesting deeper than
    MAX_DEPTH or aliases that multiply past MAX_VALUES are a UserError: ``where[:line]: expected …``."""
    try:
        # PyYAML scans ahead through every open '[' or '{' at a cost that grows with their depth: count first.
        brackets = (1 if c in "[{" else -1 for c in re.findall(r"[][{}]", text))
        if max(itertools.accumulate(brackets), default=0) > MAX_DEPTH:
            raise _Refused(None, TOO_DEEP)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _expanded_size(node, {}, 0)
            return (loader.construct_document(node) if node is not None else None), node
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        line, message = (mark.line + 1 if mark else None), f"expected YAML, got a syntax error: {problem}"
    except RecursionError:  # PyYAML composes recursively: block nesting thousands deep ends here
        line, message = None, TOO_DEEP
    except _Refused as err:
        line, message = err.args
    raise UserError(f"{where}{f':{line}' if lines and line else ''}: {message}") from None


class _Refused(Exception):
    """YAML refused before anything walks it: (line or None, message)."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None], depth: int) -> int:
    """How many values ``node`` stands for with its aliases expanded, counted without expanding them:
    a node that aliases share is counted once and its size reused."""
    line = node.start_mark.line + 1
    if id(node) in sizes:
        if sizes[id(node)] is None:
            raise _Refused(line, "expected YAML, got an alias that contains itself")
        return sizes[id(node)]
    if depth > MAX_DEPTH:
        raise _Refused(line, TOO_DEEP)
    sizes[id(node)] = None
    children = node.value if isinstance(node, yaml.SequenceNode) else (
        [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
    size = 1 + sum(_expanded_size(child, sizes, depth + 1) for child in children)
    if size > MAX_VALUES:
        raise _Refused(line, f"expected at most {MAX_VALUES} values with aliases expanded, got more "
                             f"(aliases of aliases multiply)")
    sizes[id(node)] = size
    return size

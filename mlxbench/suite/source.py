"""Where things are in a suite file: read YAML keeping each key's line, and word errors.

An error names the file, the line and the key path, as the user wrote them:
``suites/x.yaml:12: variants."GC only".micro_batch_size: expected a positive integer, got 'four'``.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from mlxbench.bounded_yaml import parse_yaml, read_text
from mlxbench.errors import UserError

KeyPath = tuple  # ("variants", "GC only", "micro_batch_size") or ("sweep", "seq_length", 1)


def format_path(path: KeyPath) -> str:
    """A key path as the user reads it: ``variants."GC only".micro_batch_size``, ``sweep.n[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        part = str(part)
        if not (part.startswith("--") or re.fullmatch(r"[A-Za-z_][\w-]*", part)):
            part = json.dumps(part, ensure_ascii=False)
        text += ("." if text else "") + part
    return text


def did_you_mean(word: Any, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Source:
    """A suite file and the line of every key path in it, for error messages."""

    def __init__(self, path: str | Path, lines: dict[KeyPath, int] | None = None):
        self.path = str(path)
        self.lines = lines or {}

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest parent the file spells out."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, path: KeyPath, message: str) -> UserError:
        line = self.line(path) if path and not str(path[0]).startswith("--") else None
        where = self.path + (f":{line}" if line else "")
        return UserError(f"{where}: {format_path(path)}: {message}" if path else f"{where}: {message}")


def _line_map(node: yaml.Node, source: Source, prefix: KeyPath = ()) -> None:
    """Fill ``source.lines`` from the composed YAML; a key given twice is an error (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = prefix + (key,)
            if path in source.lines:
                what = "variant name" if prefix == ("variants",) else "key"
                source.lines[path] = key_node.start_mark.line + 1
                raise source.error(path, f"duplicate {what} (first given at line {_first_line(node, key)})")
            source.lines[path] = key_node.start_mark.line + 1
            _line_map(value_node, source, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            source.lines[prefix + (index,)] = item.start_mark.line + 1
            _line_map(item, source, prefix + (index,))


def _first_line(node: yaml.MappingNode, key: str) -> int:
    return next(k.start_mark.line + 1 for k, _ in node.value if str(k.value) == key)


def read(path: str | Path) -> tuple[dict, Source]:
    """The suite file's raw mapping and where each key is; UserError if it is not a YAML mapping."""
    source = Source(path)
    text = read_text(path, "a readable suite file")
    raw, node = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"{type(raw).__name__} {raw!r}"[:80]
        raise UserError(f"{path}: expected a mapping of suite fields (name, workload, variants, …), got {got}")
    _line_map(node, source)
    return raw, source

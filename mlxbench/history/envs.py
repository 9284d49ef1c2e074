"""One cached virtual environment per set of pinned releases (``mlx==0.30.6 mlx-lm==0.30.7``).

Made with uv where it is on PATH, else ``python -m venv`` and pip, under ``~/.cache/mlxbench/envs/<hash>``
(``MLXBENCH_ENV_CACHE`` moves it): the pins, with their own dependencies, and mlxbench's other
dependencies at the versions this environment has (so only the pinned packages differ). mlxbench itself
is not installed there: its workers run this checkout's source (``run.supervise`` puts it first on the
path), so an environment made once serves every later version of mlxbench. An environment is built in a
folder of its own and renamed into place when it imports, so one killed half-way is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from mlxbench.errors import UserError
from mlxbench.history.sweep import TargetProblem

READY = "mlxbench-env.json"  # written last: what the environment really holds
OWN_PINNED = {"mlx", "mlx-cpu", "mlx-lm", "mlx-metal"}  # never taken from this environment
VERSIONS_CODE = ("import json, importlib.metadata as m, mlx.core\n"
                 "out = {}\n"
                 "for name in ('mlx', 'mlx-lm'):\n"
                 "    try: out[name] = m.version(name)\n"
                 "    except m.PackageNotFoundError: pass\n"
                 "print(json.dumps({'versions': out, 'mlx_core_version': mlx.core.__version__}))\n")


class EnvironmentProblem(TargetProblem):
    """A pin set that cannot be installed (or does not import): one line naming the package and version."""


def cache_root() -> Path:
    return Path(os.environ.get("MLXBENCH_ENV_CACHE", "~/.cache/mlxbench/envs")).expanduser()


def _pin(text: str, option: str) -> tuple[str, str]:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        req = None
    spec = str(req.specifier) if req else ""
    if req is None or not spec.startswith("==") or "," in spec:
        raise UserError(f"{option}: expected PACKAGE==VERSION, got {text!r}")
    return req.name.lower(), spec[2:]


def pin_sets(versions: str | None, pins: list[str]) -> list[dict[str, str]]:
    """The pin sets of ``--versions mlx==A,B,C`` (one package swept) and each ``--pins "a==1 b==2"``."""
    sets = []
    if versions:
        first, *more = [v.strip() for v in versions.split(",") if v.strip()]
        package, version = _pin(first, "--versions")
        sets += [{package: version}] + [{package: _pin(f"{package}=={v}", "--versions")[1]} for v in more]
    for group in pins:
        pinned = dict(_pin(item, "--pins") for item in group.split())
        if not pinned:
            raise UserError(f"--pins: expected 'PACKAGE==VERSION …', got {group!r}")
        sets.append(pinned)
    return sets


def label(pins: dict[str, str]) -> str:
    return " ".join(f"{name}=={version}" for name, version in sorted(pins.items()))


def _other_requirements() -> list[str]:
    """mlxbench's own dependencies other than the pinned kind, at the versions installed here."""
    out = []
    for text in metadata.requires("mlxbench") or []:
        req = Requirement(text)
        if req.name.lower() in OWN_PINNED or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            out.append(f"{req.name}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            out.append(str(req).split(";")[0])
    return sorted(out)


def _requirements(pins: dict[str, str]) -> list[str]:
    cpu = "[cpu]" if sys.platform == "linux" else ""  # MLX's Linux wheels need their CPU backend
    pinned = [f"{name}{cpu if name == 'mlx' else ''}=={version}" for name, version in sorted(pins.items())]
    # The one not pinned of MLX and mlx-lm: whichever release the installer finds compatible (recorded as run).
    free = [f"mlx{cpu}" if name == "mlx" else name for name in ("mlx", "mlx-lm") if name not in pins]
    return pinned + free + _other_requirements()


def folder_of(pins: dict[str, str]) -> Path:
    """Where the environment of ``pins`` lives: a hash of what is installed and by which Python."""
    key = json.dumps({"requirements": _requirements(pins), "python": sys.version}, sort_keys=True)
    return cache_root() / hashlib.sha256(key.encode()).hexdigest()[:16]


def ready(pins: dict[str, str]) -> dict | None:
    """The environment's description ({"python", "versions", …}) if it is built, else None."""
    path = folder_of(pins) / READY
    if not path.exists():
        return None
    return {**json.loads(path.read_text(encoding="utf-8")), "python": str(path.parent / "bin" / "python")}


def _install_commands(folder: Path, requirements: list[str]) -> list[list[str]]:
    python = str(folder / "bin" / "python")
    if shutil.which("uv"):
        return [["uv", "venv", "--quiet", "--python", sys.executable, str(folder)],
                ["uv", "pip", "install", "--python", python, *requirements]]
    return [[sys.executable, "-m", "venv", str(folder)],
            [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *requirements]]


def _why(log: str, pins: dict[str, str]) -> str:
    """pip's or uv's reason in one line, naming the package and version it is about."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (r"(Cannot install .*)", r"(Could not find a version that satisfies the requirement \S+)",
                    r"(No matching distribution found for \S+)", r"(Because .*)", r"(No solution found.*)",
                    r"ERROR: (.*)", r"error: (.*)"):
        for line in lines:
            if match := re.search(pattern, line):
                return match.group(1)[:300]
    return (lines[-1] if lines else "the installer failed without a message")[:300]


def build(pins: dict[str, str], say=print) -> dict:
    """The environment of ``pins``, built now unless it is already; EnvironmentProblem if it cannot be."""
    if (built := ready(pins)) is not None:
        return built
    folder = folder_of(pins)
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    tool = "uv" if shutil.which("uv") else "pip"
    say(f"building the environment of {label(pins)} with {tool} in {folder} …", flush=True)
    started = time.monotonic()
    for command in _install_commands(partial, _requirements(pins)):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise EnvironmentProblem(f"{label(pins)}: could not install: {_why(done.stdout + done.stderr, pins)}")
    built = _describe(partial, pins)
    (partial / READY).write_text(json.dumps(built), encoding="utf-8")
    try:
        os.replace(partial, folder)
    except OSError:  # built by another history meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    say(f"built {label(pins)} in {time.monotonic() - started:.0f} s", flush=True)
    return {**built, "python": str(folder / "bin" / "python")}


def _describe(folder: Path, pins: dict[str, str]) -> dict:
    """What the environment really holds, read by its own interpreter (not copied from the pins)."""
    python = folder / "bin" / "python"
    done = subprocess.run([str(python), "-c", VERSIONS_CODE], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EnvironmentProblem(f"{label(pins)}: installed but does not import: {last[:300]}")
    return {"pins": pins, **json.loads(done.stdout), "python": str(python)}

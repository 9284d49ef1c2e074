"""A suite at several sets of released package versions: one cached environment per pin set (history.envs)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.version import Version

from mlxbench.errors import UserError
from mlxbench.suite.schema import Case

from mlxbench.history import envs
from mlxbench.history.sweep import Target


def targets(pin_sets: list[dict[str, str]]) -> list[Target]:
    """A target per pin set, in the order given."""
    return [Target(label=envs.label(pins), order=i, kind="versions", ref=envs.label(pins))
            for i, pins in enumerate(pin_sets)]


def prepare(target: Target) -> Target:
    """The target with its environment built (or found in the cache) and what it really holds."""
    pins = dict(item.split("==", 1) for item in target.ref.split())
    built = envs.build(pins)
    return replace(target, python=built["python"], versions=built)


@dataclass
class VersionSeries:
    """The released versions of one package from a good to a bad one, the other pins held, one case of a suite."""

    package: str
    versions: list[str]
    held: dict[str, str]
    out: Path
    case: Case
    declared: dict
    entry: dict  # the suite as each run folder's suite.yaml says

    def targets(self) -> list[Target]:
        return targets([{**self.held, self.package: v} for v in self.versions])

    def suite(self) -> dict:
        return self.entry

    def name(self, index: int) -> tuple[str, str]:
        """How the answer names a point: the moved package's version, and what was held."""
        held = ", ".join(f"{k}=={v}" for k, v in sorted(self.held.items()))
        return f"{self.package}=={self.versions[index]}", f"{self.package} moved{f'; held {held}' if held else ''}"

    def prepare(self, target: Target) -> Target:
        return prepare(target)


def released(package: str, good: str, bad: str) -> list[str]:
    """The releases of ``package`` from ``good`` to ``bad`` that install here, oldest first (``pip index versions``)."""
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
                          capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("Available versions:")), "")
    found = sorted({Version(v.strip()) for v in line.partition(":")[2].split(",") if v.strip()})
    low, high = Version(good), Version(bad)
    for option, version in (("--good", low), ("--bad", high)):
        if version not in found:
            raise UserError(f"{option}: expected a release of {package} that installs here, got {version} "
                            f"(pip index versions {package}: {', '.join(map(str, found[-8:])) or 'none found'}…)")
    if low >= high:
        raise UserError(f"--good: expected a release before --bad {bad}, got {good}")
    return [str(v) for v in found if low <= v <= high]


def version_series(args) -> VersionSeries:
    """``bisect SUITE --package PKG --good A --bad B [--pin OTHER==V] [--variant NAME]``: the series to bisect."""
    from mlxbench.history.envs import pin_sets
    from mlxbench.suite.schema import expand, load

    if not args.package:
        raise UserError(f"{args.suite}: --package: expected the package whose releases are bisected, got nothing")
    package = args.package.lower()
    held = pin_sets(None, [" ".join(args.pin)])[0] if args.pin else {}
    if package in held:
        raise UserError(f"--pin: expected packages other than --package {package}, got {package}=={held[package]}")
    suite = load(args.suite, profile=args.profile)
    variant = args.variant or suite.baseline
    cases = [c for c in expand(suite) if c.variant == variant]
    if not cases:
        raise UserError(f"{args.suite}: --variant: expected one of {', '.join(suite.variants)}, got {variant!r}")
    declared = suite.workload_cls.declared_metrics()
    out = Path(args.out or Path("results", "bisect", suite.name)).resolve()
    entry = {**suite.to_dict(), "command": shlex.join(["mlxbench", *sys.argv[1:]]),
             "metrics": [m.to_dict() for m in declared.values()]}
    return VersionSeries(package, released(package, args.good, args.bad), held, out, cases[0], declared, entry)

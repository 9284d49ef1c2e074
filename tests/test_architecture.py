"""The layout's rules, checked on the source: dependencies one way, no cycles, small modules and functions.

Every ``import mlxbench…`` counts, also one inside a function: a cycle hidden there is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlxbench"
# Each part may import the parts of a lower rank and its own part, never a higher one.
RANKS = {
    "errors": 0, "stats": 0, "options": 0, "bounded_yaml": 0.5,
    "results": 1,
    "machine": 2,
    "workloads": 3,
    "estimate": 3.5,
    "suite": 4,
    "run": 5, "report": 5, "history": 5.5,
    "commands": 6, "cli": 7, "__main__": 8, "__init__": 8,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("mlxbench",) + tuple(p for p in parts if p != "__init__"))
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every mlxbench module ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlxbench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlxbench"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = _modules()
GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_every_part_has_a_rank():
    assert {_part(m) for m in MODULES} <= set(RANKS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = RANKS[_part(module)]
    upward = [m for m in GRAPH[module]
              if _part(m) != _part(module) and _part(m) != "__init__" and RANKS[_part(m)] >= mine]
    assert not upward, f"{module} (rank {mine}) imports {upward}: dependencies must point down"


# Parts that must work for any workload, so name none: they read what a workload declares.
WORKLOAD_BLIND = ("mlxbench.report", "mlxbench.estimate", "mlxbench.run.advisor")
PARAMETER_READS = {"params", "p", "sweep", "settings", "fixed"}  # what a case's parameters are called


def _shipped_workloads() -> list:
    from mlxbench import workloads

    return [workloads.get(name) for name in workloads.names()]


def _reads_a_parameter(node: ast.AST, parent: ast.AST, grandparent: ast.AST | None = None) -> bool:
    """``params["x"]``, ``r.params.get("x")``, ``sweep["x"]``, ``PARAM = "x"``: a literal used as (or kept to
    be) a key of a case's parameters."""
    def named(x):
        return (isinstance(x, ast.Name) and x.id in PARAMETER_READS) or (
            isinstance(x, ast.Attribute) and x.attr in PARAMETER_READS)

    if isinstance(parent, (ast.Assign, ast.AnnAssign)) or (  # PARAM = "framework": a read waiting to happen
            isinstance(parent, ast.Tuple) and isinstance(grandparent, ast.Assign)):
        return True
    if isinstance(parent, ast.Subscript) and parent.slice is node:
        return named(parent.value)
    return (isinstance(parent, ast.Call) and node in parent.args and isinstance(parent.func, ast.Attribute)
            and parent.func.attr in ("get", "pop", "setdefault") and named(parent.func.value))


def _literals(path: Path):
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node, parents.get(node), parents.get(parents.get(node))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(WORKLOAD_BLIND)))
def test_the_generic_parts_name_no_workload_and_no_parameter(module):
    """By reading the code: no shipped workload's name, and none of its parameters read by name or spelled
    out (a parameter that is one plain word, such as ``model`` or ``test``, only where it is read)."""
    from mlxbench.workloads.distributed import DISTRIBUTED_PARAM
    from mlxbench.workloads.memory_settings import NAMES as MEMORY_SETTINGS

    shipped = _shipped_workloads()
    names = {cls.name for cls in shipped}
    # The runner's own parameters, which every workload that runs on several ranks or under MLX's limits shares.
    runner = {DISTRIBUTED_PARAM.name, *MEMORY_SETTINGS}
    params = {p.name for cls in shipped for p in cls.params} - runner
    found = []
    for node, parent, grandparent in _literals(MODULES[module]):
        word = node.value
        if word in names or (word in params and ("_" in word or _reads_a_parameter(node, parent, grandparent))):
            found.append(f"line {node.lineno}: {word!r}")
    assert not found, f"{module} names a workload or a workload parameter: {', '.join(found)}"


def test_the_blind_check_sees_a_parameter_read():
    """The check above can fail: it finds the reads a workload-specific report would make."""
    tree = ast.parse('r.params["framework"]; x = params.get("model"); f("kv_bits"); z = sweep["test"]; P, Q = "n", 1')
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    reads = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and _reads_a_parameter(n, parents[n], parents.get(parents[n]))]
    assert sorted(reads) == ["framework", "model", "n", "test"]


def test_there_is_no_import_cycle():
    # Package __init__ modules are where a package is entered, not a dependency of their children.
    graph = {m: {d for d in deps if not MODULES[d].name == "__init__.py"} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module} has more than {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{module}.{node.name} has {length} lines"


def test_rendering_loads_no_blas_and_no_mlx():
    import subprocess
    import sys

    code = ("import sys, mlxbench.report.html, mlxbench.commands.report, mlxbench.commands.compare\n"
            "maps = open('/proc/self/maps').read() if sys.platform.startswith('linux') else ''\n"
            "assert 'mlx.core' not in sys.modules, 'mlx.core imported'\n"
            "assert 'cmeel.prefix' not in maps, 'OpenBLAS loaded'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

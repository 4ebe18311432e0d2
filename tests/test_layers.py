"""The package's layers, read from its source: which part may import which (at run time;
imports under ``if TYPE_CHECKING:`` are for annotations only), and no import cycle
outside the backend registry. Also what ``import slurmbatch`` loads."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import slurmbatch

PACKAGE = Path(slurmbatch.__file__).parent
SPEC = ("batch", "research", "domain", "expressions", "units")
# part -> the parts it must never import (a part is a module, or a subpackage's name)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(SPEC, ("store", "slurm", "execution", "backend", "collector", "plan",
                           "status", "progress", "cli", "demo")),
    **dict.fromkeys(("errors", "checks", "files", "contract", "ids"),
                    ("*",)),  # the base: only one another
    "plan": ("*",),
    "store": (*SPEC, "study", "backend", "execution", "slurm", "collector", "results",
              "plan", "status", "progress", "cli", "demo"),
    "results": (*SPEC, "study", "backend", "execution", "slurm", "collector", "plan", "cli"),
    "collector": (*SPEC, "study", "backend", "execution", "slurm", "plan", "cli"),
    "execution": (*SPEC, "study", "slurm", "collector", "results", "cli", "demo"),
    "slurm": (*SPEC, "study", "cli", "demo"),
    "backend": (*SPEC, "study", "slurm", "execution", "cli", "demo"),
    "study": (*SPEC, "slurm", "execution", "cli", "demo"),
}
BASE = ("errors", "checks", "files", "contract", "ids")
# the one place allowed to import executors' subpackages (which import it): functions of
# backend.py that pick an executor by name
REGISTRY = {("backend", "make_backend"), ("backend", "submissions_of")}


def part_of(module: str) -> str:
    """'slurmbatch.store.table' -> 'store'; 'slurmbatch.batch' -> 'batch'."""
    return module.split(".")[1] if module.count(".") else module


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    names = [f"{base}.{a.name}" for a in node.names]
    return [base, *names]


def runtime_imports(path: Path) -> list[tuple[str, str | None]]:
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """(imported slurmbatch module, enclosing function or None) of every import in
    ``source`` that runs (imports under ``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(source)
    out: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), func)
                continue
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) \
                else func
            if isinstance(child, ast.Import):
                out.extend((a.name, func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                out.extend((m, func) for m in _resolve(module, is_package, child))
            visit(child, inner)

    visit(tree, None)
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return [(m, f) for m, f in out if m in modules and m != module]


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def violations(imports: dict[str, list[tuple[str, str | None]]]) -> list[str]:
    bad = []
    for module, found in imports.items():
        part = part_of(module)
        rule = FORBIDDEN.get(part, ())
        for target, func in found:
            other = part_of(target)
            if other == part or (other == "slurmbatch" and target == "slurmbatch"):
                continue
            if (part, func) in REGISTRY:
                continue
            if rule == ("*",):
                allowed = BASE
                if other not in allowed:
                    bad.append(f"{module} imports {target} (it may import only {BASE})")
            elif other in rule:
                bad.append(f"{module} imports {target} ({part} never imports {other})")
    return bad


def graph() -> dict[str, list[tuple[str, str | None]]]:
    return {module_name(p): runtime_imports(p) for p in all_modules()
            if module_name(p) != "slurmbatch"}


def test_every_part_imports_only_what_comes_before_it() -> None:
    assert violations(graph()) == []


@pytest.mark.parametrize("spec", SPEC)
@pytest.mark.parametrize("target", ["slurmbatch.store.table", "slurmbatch.slurm.backend",
                                    "slurmbatch.execution.worker"])
def test_the_layer_test_fails_when_a_spec_module_imports_the_store_or_slurm(
        spec: str, target: str) -> None:
    """A spec module made to import the store, Slurm or execution (at module level or
    inside a function) is reported; under TYPE_CHECKING it is not."""
    imports = graph()
    for func in (None, "run"):
        changed = {**imports, f"slurmbatch.{spec}": [*imports[f"slurmbatch.{spec}"],
                                                     (target, func)]}
        assert violations(changed) == [
            f"slurmbatch.{spec} imports {target} ({spec} never imports "
            f"{part_of(target)})"]


def test_runtime_imports_skip_type_checking_blocks() -> None:
    source = textwrap.dedent("""\
        from typing import TYPE_CHECKING
        from .store import table
        if TYPE_CHECKING:
            from .slurm.backend import DryRun
        else:
            import slurmbatch.plan
        def f():
            from .execution import worker
        """)
    found = imports_of(source, "slurmbatch.batch", False)
    assert ("slurmbatch.plan", None) in found
    assert ("slurmbatch.store.table", None) in found
    assert ("slurmbatch.execution.worker", "f") in found
    assert not [m for m, _ in found if m.startswith("slurmbatch.slurm")]


def test_no_import_cycle_outside_the_backend_registry() -> None:
    edges: dict[str, set[str]] = {}
    for module, found in graph().items():
        for target, func in found:
            if (part_of(module), func) in REGISTRY:
                continue
            # importing a package's submodule runs the package's __init__ first
            edges.setdefault(module, set()).add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


def loaded_after(code: str) -> dict[str, object]:
    """Which heavy modules a fresh interpreter has loaded after ``code``."""
    probe = textwrap.dedent(f"""\
        import json, sys
        {code}
        print(json.dumps({{m: m in sys.modules for m in
                          ("submitit", "h5py", "pandas", "numpy", "tqdm", "cloudpickle",
                           "slurmbatch.slurm")}}))
        """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_slurmbatch_loads_nothing_heavy() -> None:
    assert not any(loaded_after("import slurmbatch").values())


def test_defining_and_running_locally_never_loads_submitit(tmp_path: Path) -> None:
    """Defining a Batch and a Research and running them in local processes (twice: the
    second run finds the folder made): no Slurm code, nor submitit, is imported."""
    loaded = loaded_after(f"""
        import slurmbatch
        class R(slurmbatch.Run):
            def run(self, x=0):
                return {{'y': x}}
        b = slurmbatch.Batch('b', path={str(tmp_path)!r})
        b.add_factorial_runs(R, {{'x': [1, 2]}})
        b(bar=False)
        b(bar=False)
        r = slurmbatch.Research(path={str(tmp_path)!r}, domain=slurmbatch.Domain(a=[1]))
        r.add_callable(abs, slurmbatch.EC('a'), save_to='v')
        r.run(bar=False)
        assert len(b.results.df) == 2 and len(r.results.df) == 1
    """)
    assert not loaded["submitit"] and not loaded["slurmbatch.slurm"]
    assert loaded["h5py"] and loaded["pandas"]


def test_every_public_name_is_importable_and_not_a_module() -> None:
    """Each name of __all__ resolves (lazily) to what it names, also after every submodule
    has been imported (a submodule of the same name must not shadow it)."""
    import importlib

    for path in all_modules():
        if path.name != "__main__.py":
            importlib.import_module(module_name(path))
    for name in slurmbatch.__all__:
        value = getattr(slurmbatch, name)
        assert not isinstance(value, type(slurmbatch)), name
        assert name in dir(slurmbatch)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        slurmbatch.nope  # noqa: B018


def test_every_subpackage_is_installed() -> None:
    """pyproject.toml lists the packages setuptools installs: every subpackage of the
    source tree is among them (a missing one installs a package that cannot import)."""
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"]) - {"slurmbatch.templates"}
    found = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert listed == found

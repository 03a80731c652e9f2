"""The package layout: one folder per estimator family, no import circles, records that point
into their family's folder and their family's oracle module (README, "Adding an estimator").

These tests read the source with ``ast``; they import nothing they check, so a circle that
Python happens to tolerate (a lazy import inside a function) is still found.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

from reference import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "verify")
FAMILY_FILES = ("__init__.py", "numpy_reference.py", "device.py", "cpu.py", "cuda.py")
FAMILIES = sorted(p.name for p in (ROOT / "reference" / "estimators").iterdir()
                  if p.is_dir() and (p / "__init__.py").exists())


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its body (lazy imports included).

    ``from P import x`` counts as an import of ``P.x`` where that is a module, else of ``P``;
    the implicit import of a package's ``__init__`` by its submodules is not an edge.
    """
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules:
                    out.add(sub)
                elif target in modules:
                    out.add(target)
    out.discard(name)
    return out


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_circles():
    modules = _project_modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "reference.estimators.swap.numpy_reference" in graph  # the walk sees the families
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph) or [])


def test_cycle_finder_finds_a_circle():
    # the check above must be able to fail
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_walk_resolves_relative_and_lazy_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from .device import build\n\nfrom ... import _cpu\n")
    modules = {"reference.estimators.swap.device": src, "reference._cpu": src}
    assert _imports("reference.estimators.swap.cpu", src, modules) == {
        "reference.estimators.swap.device", "reference._cpu"}


def test_at_most_twelve_modules_at_the_top_of_reference():
    top = sorted(p.name for p in (ROOT / "reference").glob("*.py"))
    assert len(top) <= 12, top


def test_family_folders_hold_the_same_four_files():
    assert set(FAMILIES) == {"score_function", "augment_reinforce", "swap", "relaxation",
                             "ksubset_perturbation", "st_variants", "control_variates",
                             "rebar", "multi_sample"}
    for fam in FAMILIES:
        folder = ROOT / "reference" / "estimators" / fam
        assert sorted(p.name for p in folder.glob("*.py")) == sorted(FAMILY_FILES), fam
        assert (ROOT / "verify" / "moments" / f"{fam}.py").exists(), fam


@pytest.mark.parametrize("name", list(REGISTRY))
def test_record_paths_point_into_its_family(name):
    est = REGISTRY[name]
    family = {est.backends[b].split(".")[2] for b in ("numpy", "cpu", "cuda")}
    assert len(family) == 1, est.backends
    (fam,) = family
    assert fam in FAMILIES
    for backend, stem in (("numpy", "numpy_reference"), ("cpu", "cpu"), ("cuda", "cuda")):
        module, _, attr = est.backends[backend].partition(":")
        assert module == f"reference.estimators.{fam}.{stem}"
        assert attr.startswith(f"{backend.upper()}_")
        # the object exists without importing the module (cuda.py needs numba-cuda)
        assert f"{attr} = " in (ROOT / "reference" / "estimators" / fam / f"{stem}.py").read_text()
    module, _, fn = est.exact_moments_path.partition(":")
    assert module == f"verify.moments.{fam}", est.exact_moments_path
    assert callable(getattr(importlib.import_module(module), fn))
    # the family package exports the record
    assert est in vars(importlib.import_module(f"reference.estimators.{fam}")).values()


def test_every_family_is_in_the_registry():
    fams = {e.backends["numpy"].split(".")[2] for e in REGISTRY.values()}
    assert fams == set(FAMILIES)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_scripts_import_only_existing_project_names(script):
    """A script's ``from reference... import x`` / ``from verify... import x`` must resolve
    (the scripts are not run by the default test suite, so a moved name would go unseen)."""
    tree = ast.parse((ROOT / "scripts" / script).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in PACKAGES:
            assert importlib.util.find_spec(node.module) is not None, node.module
            mod = importlib.import_module(node.module)
            for a in node.names:
                assert hasattr(mod, a.name) or importlib.util.find_spec(
                    f"{node.module}.{a.name}") is not None, f"{node.module}.{a.name}"


def test_no_disk_cache_on_kernels_that_call_another_files_device_functions():
    """Numba's on-disk cache is keyed on the kernel's own file: a kernel that calls device
    functions built in another file would keep running stale arithmetic after an edit there."""
    for fam in FAMILIES:
        for stem in ("cpu", "cuda"):
            src = (ROOT / "reference" / "estimators" / fam / f"{stem}.py").read_text()
            assert "cache=True" not in src, f"{fam}/{stem}.py"

"""The import rules of the house, tested rather than hoped for (STYLE.md, "How that translates here").

Layers, top down: the jobs (``tune_jobs/<job>.py``, and the local-cluster tool) -> ``tune_jobs/trials`` ->
``tune_jobs/runtime`` -> ``tune_jobs/verdicts``; beside them ``search_spaces`` and ``mlflow_utils``; and
``trainables`` at the bottom. Nothing imports a layer above it, nothing imports in a circle, an import
inside a function is only for an optional dependency, and only ``mlflow_utils`` imports mlflow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.paths import PROJECT_ROOT

PACKAGES = ("trainables", "search_spaces", "mlflow_utils", "tune_jobs")
OPTIONAL = ()
"""Third-party modules that may be imported inside a function (dependencies a user may lack)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((PROJECT_ROOT / package).rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import of a file (TYPE_CHECKING blocks skipped)."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.extend((f"{child.module}.{alias.name}", in_function) for alias in child.names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


def _project_edges() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a ``from package import name`` counts as the package,
    or as its submodule when ``name`` is one)."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, _ in _imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges[name].add(imported)
    return edges


def _layer(module: str) -> int:
    """Higher imports lower, never the reverse."""
    if module.startswith("tune_jobs.verdicts"):
        return 1
    if module.startswith("tune_jobs.runtime"):
        return 2
    if module.startswith("tune_jobs.trials"):
        return 3
    if module.startswith("tune_jobs.") or module == "tune_jobs":
        return 4
    return 0  # trainables, search_spaces, mlflow_utils


def _loaded_after_importing(modules: list[str], watched: set[str]) -> list[str]:
    code = (f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {watched!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout.strip())


def test_importing_trainables_loads_neither_ray_nor_mlflow():
    modules = [name for name in _modules() if name.startswith("trainables")]
    assert _loaded_after_importing(modules, {"ray", "mlflow", "optuna"}) == []


def test_the_addition_trainer_needs_torch_and_the_standard_library_alone():
    """What runs on a GPU machine with PyTorch alone (no Ray, MLflow, pandas, tyro there)."""
    modules = [name for name in _modules() if name.startswith("trainables.addition") and not name.endswith("__main__")]
    assert _loaded_after_importing(modules, {"ray", "mlflow", "optuna", "pandas", "tyro", "scipy", "tokenizers"}) == []


def test_only_mlflow_utils_imports_mlflow():
    offenders = [f"{name}: {imported}" for name, path in _modules().items() if not name.startswith("mlflow_utils")
                 for imported, _ in _imports(path) if imported.split(".")[0] == "mlflow"]
    assert offenders == []


def test_the_runtime_imports_no_trial_and_no_job_and_layers_point_down():
    upward = [f"{module} -> {target}" for module, targets in _project_edges().items() for target in targets
              if _layer(target) > _layer(module)]
    assert upward == []


@pytest.mark.parametrize("package, forbidden", [("trainables", ("tune_jobs", "search_spaces", "mlflow_utils")),
                                                ("search_spaces", ("tune_jobs", "mlflow_utils")),
                                                ("mlflow_utils", ("tune_jobs", "search_spaces"))])
def test_the_bottom_packages_import_no_job_code(package, forbidden):
    offenders = [f"{module} -> {target}" for module, targets in _project_edges().items() if module.startswith(package)
                 for target in targets if target.split(".")[0] in forbidden]
    assert offenders == []


def test_there_is_no_import_circle():
    edges, state, circles = _project_edges(), {}, []

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                walk(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert circles == []


def test_imports_inside_functions_are_only_for_optional_dependencies():
    offenders = [f"{name}: {imported}" for name, path in _modules().items() for imported, inside in _imports(path)
                 if inside and imported.split(".")[0] not in OPTIONAL]
    assert offenders == []


def test_the_layering_rules_can_fail(tmp_path):
    """The scanner sees an import inside a function and an upward import (so the rules above can break)."""
    path = tmp_path / "probe.py"
    path.write_text("import tune_jobs.runtime.job\n\ndef f():\n    from tune_jobs.trials import addition\n")
    assert _imports(path) == [("tune_jobs.runtime.job", False), ("tune_jobs.trials.addition", True)]
    assert _layer("tune_jobs.trials.addition") > _layer("tune_jobs.runtime.job") > _layer("tune_jobs.verdicts.seeds")

"""The layer rule of docs/architecture.md, checked on the source: imports in core/ point down, core never
imports streamlit or ui, no module imports another module's _private name, and no import cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"

# Lower number = lower layer. A module may import its own package and any package of a lower layer.
LAYER = {"errors": 0, "i18n": 0, "metrics": 1, "plots": 1, "data": 2, "model": 3, "explain": 4, "evaluate": 5,
         "workflow": 6, "cli": 7, "__main__": 8, "__init__": 8}
# metrics is a leaf: numpy/pandas/scikit-learn only, and the shared error types and translations.
ONLY = {"metrics": {"errors", "i18n", "metrics"}, "plots": {"errors", "i18n", "plots"}}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(name: str) -> str:
    """'core.model.bundle' -> 'model'; 'core.errors' -> 'errors'; 'core' -> '__init__'."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, root: Path = ROOT):
    """(imported module, names, line) for every import statement of the file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path, root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                parts = me.split(".")
                base = parts[: -node.level] if path.name != "__init__.py" else parts[: len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names], node.lineno


SOURCES = sorted(CORE.rglob("*.py"))


def test_the_tree_is_scanned():
    names = {module_name(p) for p in SOURCES}
    assert {"core.data.schema", "core.metrics.discrimination", "core.model.estimator", "core.explain.shapley",
            "core.evaluate.cv", "core.workflow.risk", "core.cli"} <= names
    assert len(SOURCES) >= 40


def upward_imports(paths, root: Path = ROOT) -> list[str]:
    wrong = []
    for path in paths:
        me = module_name(path, root)
        mine = package_of(me)
        for target, _, line in imports(path, root):
            if not (target == "core" or target.startswith("core.")):
                continue
            theirs = package_of(target)
            if theirs == mine:
                continue
            allowed = ONLY.get(mine)
            ok = theirs in allowed if allowed is not None else LAYER[theirs] < LAYER[mine]
            if not ok:
                wrong.append(f"{me}:{line} imports {target}")
    return wrong


def test_imports_point_down():
    assert upward_imports(SOURCES) == []


@pytest.mark.parametrize("forbidden", ["streamlit", "ui", "pages"])
def test_core_never_imports_the_interface(forbidden):
    found = [f"{module_name(p)}:{line}" for p in SOURCES for target, _, line in imports(p)
             if target == forbidden or target.startswith(forbidden + ".")]
    assert found == []


def test_no_module_imports_another_modules_private_name():
    found = []
    for path in SOURCES:
        me = module_name(path)
        for target, names, line in imports(path):
            if target.startswith("core") and target != me:
                found += [f"{me}:{line} {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert found == []


def test_no_import_cycle_between_core_modules():
    modules = {module_name(p): p for p in SOURCES}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target, names, _ in imports(path):
            if target not in modules:
                continue
            # "from core.model import x" where x is a submodule counts as an edge to that submodule.
            subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            edges |= subs or ({target} if not target.endswith(name) else set())
        # A package's __init__ imports its own modules; modules importing their package would cycle.
        graph[name] = edges - {name}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a metrics module importing the model would be reported."""
    bad = tmp_path / "core" / "metrics" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from core.errors import CohortError\nfrom core.model.estimator import RiskModel\n")
    fine = tmp_path / "core" / "workflow" / "fine.py"
    fine.parent.mkdir(parents=True)
    fine.write_text("from core.model.estimator import RiskModel\n")
    assert upward_imports([bad, fine], tmp_path) == ["core.metrics.bad:2 imports core.model.estimator"]

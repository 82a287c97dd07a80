"""The package's layout: folders by what the book is made of, imports running one way.

The import graph is read from the source with `ast` (every `import` and `from ... import`,
at the top of a module or inside a function), so a lazy import inside a function counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vaebook"

# Lowest first. A module may import modules of its own layer or of a lower one, never of a
# higher one; circles are refused everywhere, within a layer too.
LAYERS = [
    ("models", "losses", "plotting", "data", "exact"),
    ("train",),
    ("store",),
    ("metrics",),
    ("explore",),
    ("exercises", "cli", "__main__"),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from ... import` statement names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, for every module under `root`."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    top = root.name
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, path.name == "__init__.py", node)
                # `from pkg import sub` imports the module pkg.sub; `from mod import f`, mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t.split(".")[0] == top and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package's own __init__
        return len(LAYERS)
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add its folder to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
            for a, targets in sorted(graph.items()) for b in sorted(targets) if layer(b) > layer(a)]


def test_no_import_circle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_imports_run_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_trainer_and_the_store_do_not_know_each_other_s_insides():
    graph = import_graph()
    trainer = {m for m in graph if m.startswith("vaebook.train")}
    store = {m for m in graph if m.startswith("vaebook.store")}
    assert not {(a, b) for a in trainer for b in graph[a] if b in store}
    # the store may describe runs (TrainConfig, History) but never imports the loop
    assert not {(a, b) for a in store for b in graph[a] if b in ("vaebook.train.loop", "vaebook.train")}


def test_modules_are_readable_in_one_sitting():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 320}
    assert not long, f"modules over about 300 lines: {long}"


def test_the_top_of_the_package_is_a_short_map():
    entries = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert len(entries) <= 13, entries
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) <= 5, f"{folder.name}/__init__.py: say in a few lines what lives there"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "vaebook" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "vaebook"


def test_a_circle_made_on_purpose_is_found(tmp_path):
    pkg = write(tmp_path, {"__init__.py": "", "store/__init__.py": "", "train/__init__.py": "",
                           "train/loop.py": "def f():\n    from ..store import runs\n",
                           "store/runs.py": "from ..train.loop import f\n"})
    cycle = find_cycle(import_graph(pkg))
    assert cycle and set(cycle) == {"vaebook.train.loop", "vaebook.store.runs"}


def test_an_upward_import_made_on_purpose_is_found(tmp_path):
    pkg = write(tmp_path, {"__init__.py": "", "models.py": "from vaebook.metrics import measures\n",
                           "metrics/__init__.py": "", "metrics/measures.py": "import torch\n"})
    assert upward_imports(import_graph(pkg)) == [
        "vaebook.models (layer 0) imports vaebook.metrics.measures (layer 3)"]


@pytest.mark.parametrize("statement, target", [
    ("from . import files", "vaebook.store.files"),
    ("from .files import root_dir", "vaebook.store.files"),
    ("from ..models import VAE", "vaebook.models"),
    ("import vaebook.data.faces", "vaebook.data.faces"),
])
def test_imports_are_resolved_as_python_resolves_them(tmp_path, statement, target):
    pkg = write(tmp_path, {"__init__.py": "", "models.py": "", "store/__init__.py": "",
                           "store/files.py": "", "data/__init__.py": "", "data/faces.py": "",
                           "store/checkpoints.py": statement + "\n"})
    assert import_graph(pkg)["vaebook.store.checkpoints"] == {target}

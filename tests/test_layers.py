"""The layer rule, read from the source: a package imports only packages below it, recipes never import
each other, and no import circle exists among growthcurve's modules (imports inside functions count too:
deferring an import does not remove the dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "growthcurve"

# Lower number = lower layer. A module may import its own layer and the layers below it. ``cli`` modules
# (the root ``cli.py`` and every ``<package>/cli.py``) are the top: each wires commands to its package.
RANK = {
    "": 0,  # config, errors, atomic (and the other top-level helpers)
    "data": 1,
    "store": 1,
    "models": 2,
    "evaluation": 2,
    "training": 3,
    "compression": 4,
    "serving": 5,
    "apps": 6,
    "validation": 7,
    "planning": 7,
    "team": 7,
    "growth": 7,  # tune, retrain: train models from what the store recorded
    "review": 7,  # the review queue: reads served predictions and assistant turns (above serving and apps)
    "report": 8,
}
RECIPES = {f"growthcurve.training.{name}" for name in ("text", "token", "image", "baseline")}
TOP = 99


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """growthcurve modules that ``path`` imports anywhere in its body (resolved to known module names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names]
            # ``from package import submodule`` depends on the submodule, not on the package's __init__
            targets = subs if all(t in known for t in subs) else [base, *subs]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("growthcurve") and t != name:
                found.add(t)
    return found - {"growthcurve"} if name != "growthcurve" else found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, src): p for p in src.rglob("*.py") if "alembic" not in p.parts}
    known = set(files)
    return {name: imports_of(p, name, known) for name, p in files.items()}


def rank(module: str) -> int:
    parts = module.split(".")
    if parts[-1] == "cli" or parts[-1] == "__main__":
        return TOP
    top = parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else ""
    return RANK.get(top, 0)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if rank(dep) > rank(mod):
                bad.append(f"{mod} (layer {rank(mod)}) imports {dep} (layer {rank(dep)})")
            if mod in RECIPES and dep in RECIPES:
                bad.append(f"recipe {mod} imports recipe {dep}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} - {"examples"}
    assert packages <= set(RANK), f"give these packages a layer in RANK: {sorted(packages - set(RANK))}"


def test_layers_point_one_way() -> None:
    assert layer_violations(import_graph()) == []


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_checker_catches_a_back_import(tmp_path: Path) -> None:
    """The checks fail on a deliberate back-import and on a recipe importing another."""
    src = tmp_path / "growthcurve"
    for pkg in ("data", "training"):
        (src / pkg).mkdir(parents=True)
        (src / pkg / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "data" / "text.py").write_text("def f():\n    from growthcurve.training.loop import fit\n")
    (src / "training" / "loop.py").write_text("from growthcurve.data.text import f\n")
    (src / "training" / "text.py").write_text("from growthcurve.training import token\n")
    (src / "training" / "token.py").write_text("import growthcurve.data.text\n")
    graph = import_graph(src)
    assert graph["growthcurve.data.text"] == {"growthcurve.training.loop"}
    assert cycles(graph) == [["growthcurve.data.text", "growthcurve.training.loop"]]
    bad = layer_violations(graph)
    assert "growthcurve.data.text (layer 1) imports growthcurve.training.loop (layer 3)" in bad
    assert "recipe growthcurve.training.text imports recipe growthcurve.training.token" in bad


@pytest.mark.parametrize("module", ["growthcurve.models.build", "growthcurve.data.text", "growthcurve.evaluation.ner"])
def test_lower_layers_never_import_training(module: str) -> None:
    deps = import_graph()[module]
    assert not [d for d in deps if d.startswith("growthcurve.training")]

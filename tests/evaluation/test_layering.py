"""Import structure of gwinfer/evaluation, read from the source with ``ast`` (nothing is imported).

* no import cycles between its modules (function-level imports included);
* no private (leading underscore) name imported from another module;
* one-way layering: never ``gwinfer.serving`` or ``gwinfer.cli``; from ``gwinfer.models`` only the package's
  public names, never a submodule;
* no argparse (command lines live in gwinfer/cli).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "gwinfer.evaluation"
SOURCE = Path(__file__).resolve().parents[2] / "gwinfer" / "evaluation"
MODELS_PUBLIC = {"load_model", "load_estimator", "resolve_model_path", "symmetrised", "build_estimator",
                 "save_estimator", "is_posterior_file"}


def _module_name(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _imports() -> dict[str, list[tuple[int, str, list[str]]]]:
    """{module: [(line, imported module, imported names)]} for every import statement of the package."""
    out: dict[str, list[tuple[int, str, list[str]]]] = {}
    for path in sorted(SOURCE.glob("*.py")):
        name = _module_name(path)
        rows = out.setdefault(name, [])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                rows += [(node.lineno, a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against the package
                    base = f"{PACKAGE}.{base}" if base else PACKAGE
                rows.append((node.lineno, base, [a.name for a in node.names]))
    return out


def _graph() -> dict[str, set[str]]:
    imports = _imports()
    graph: dict[str, set[str]] = {m: set() for m in imports}
    for m, rows in imports.items():
        for _, base, names in rows:
            targets = {base} | {f"{base}.{n}" for n in names}
            graph[m] |= {t for t in targets if t in graph and t != m}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycles():
    graph = _graph()
    assert len(graph) >= 10 and graph[f"{PACKAGE}.evaluate"]  # the scan found the package
    assert _cycles(graph) == []


def test_no_private_names_across_modules():
    bad = [f"{m}:{line} {base}.{n}" for m, rows in _imports().items() for line, base, names in rows
           for n in names if base.startswith("gwinfer") and n.startswith("_")]
    assert bad == []


def test_imports_go_one_way():
    bad = []
    for m, rows in _imports().items():
        for line, base, names in rows:
            where = f"{m}:{line} {base}"
            if base.split(".")[:2] in (["gwinfer", "serving"], ["gwinfer", "cli"]) or (
                    base == "gwinfer" and {"serving", "cli"} & set(names)):
                bad.append(f"{where} (serving/cli)")
            if base.startswith("gwinfer.models."):
                bad.append(f"{where} (a gwinfer.models submodule)")
            if base == "gwinfer.models" and set(names) - MODELS_PUBLIC:
                bad.append(f"{where} {sorted(set(names) - MODELS_PUBLIC)} (not public gwinfer.models names)")
            if base == "argparse":
                bad.append(f"{where} (argparse belongs in gwinfer/cli)")
    assert bad == []

"""The house rules of gwinfer's imports, checked on the source (every import statement, lazy ones too).

Layers, lowest first; a module may import its own layer and the layers below, never above:

    core (top-level modules: errors, config, provenance, registry, checks, ...)
    physics <- waveforms | detectors (independent of each other)
    <- data <- models <- training <- evaluation <- serving <- cli

Also: no import cycle between gwinfer's modules, no private (underscore) name imported from another
module, torch never in physics/waveforms/detectors and lalsimulation never in models/training.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gwinfer"
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("physics",),
    ("waveforms", "detectors"),
    ("data",),
    ("models",),
    ("training",),
    ("evaluation",),
    ("serving",),
    ("cli",),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
FORBIDDEN = {
    "physics": ("torch",),
    "waveforms": ("torch",),
    "detectors": ("torch",),
    "models": ("lalsimulation", "lal"),
    "training": ("lalsimulation", "lal"),
}
#: the Triton python-backend model files run inside Triton's stub and must not import gwinfer at all
STANDALONE = ("triton_python_model", "triton_stream_model")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and (ROOT / f"{parts[1]}.py").is_file()):
        return "cli" if module == "gwinfer.train" else "core"
    return parts[1]


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of every import statement of ``path``, resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    base = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                mod = ".".join([*anchor, mod] if mod else anchor)
            out.append((mod, [a.name for a in node.names], node.lineno))
    return out


def source_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def graph() -> dict[str, set[str]]:
    """gwinfer module -> the gwinfer modules it imports (``from pkg import mod`` counts as pkg.mod)."""
    known = {module_name(p) for p in source_files()}
    g: dict[str, set[str]] = {}
    for path in source_files():
        me = module_name(path)
        targets = g.setdefault(me, set())
        for mod, names, _ in imports(path):
            if not mod.startswith("gwinfer"):
                continue
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]
            targets.update(subs or ([mod] if mod in known else []))
        targets.discard(me)
    return g


def test_layers_point_one_way():
    bad = []
    for path in source_files():
        me = module_name(path)
        mine = package_of(me)
        for mod, _, line in imports(path):
            if mod.startswith("gwinfer"):
                if any(s in me for s in STANDALONE):
                    bad.append(f"{me}:{line} imports {mod} (Triton model files must not import gwinfer)")
                    continue
                theirs = package_of(mod)
                if theirs == mine:
                    continue
                same_layer = RANK[theirs] == RANK[mine]
                if RANK[theirs] > RANK[mine] or same_layer:
                    bad.append(f"{me}:{line} ({mine}) imports {mod} ({theirs})")
            elif mod.split(".")[0] in FORBIDDEN.get(mine, ()):
                bad.append(f"{me}:{line} ({mine}) imports {mod}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt in g and state.get(nxt) is None:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if state.get(node) is None:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_names_across_modules():
    bad = [
        f"{module_name(p)}:{line} imports {n} from {mod}"
        for p in source_files()
        for mod, names, line in imports(p)
        if mod.startswith("gwinfer")
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_argparse_only_in_the_cli():
    bad = [
        module_name(p)
        for p in source_files()
        if package_of(module_name(p)) != "cli" and any(mod == "argparse" for mod, _, _ in imports(p))
    ]
    assert not bad, f"argparse outside gwinfer/cli: {bad}"


@pytest.mark.parametrize("layer", [n for names in LAYERS for n in names])
def test_every_layer_exists(layer):
    assert layer == "core" or (ROOT / layer).is_dir()


def test_upper_layers_use_the_public_models_api():
    """evaluation, serving and cli reach models only through ``gwinfer.models``' public names."""
    bad = [
        f"{module_name(p)}:{line} imports {mod}"
        for p in source_files()
        if package_of(module_name(p)) in ("evaluation", "serving", "cli")
        for mod, _, line in imports(p)
        if mod.startswith("gwinfer.models.")
    ]
    assert not bad, "use `from gwinfer.models import ...`:\n" + "\n".join(bad)

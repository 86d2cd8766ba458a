"""The layering of ibkd, read from its imports (docs/architecture.md, "Layers").

Every module under src/ibkd is parsed with `ast` (nothing is imported), and the graph of imports
between ibkd's own modules is built from module-level and function-level imports alike, with
relative imports resolved and `from pkg import submodule` counted as an import of the submodule.
The graph must have no cycle; every module belongs to one layer of `LAYERS` and imports only
modules of its own layer or of layers below it; and an ibkd module may be imported inside a
function only where an allow-list below says why:

- `TORCH_FREE`: modules kept free of torch when imported (torch takes seconds to import), so
  that importing `ibkd.cli` stays light. Such a module may import, inside the function that
  needs it, an ibkd module that loads torch, and only such a module; the test checks both
  sides from the imports (torch loaded at module level, directly or through ibkd modules
  imported at module level).
- `FUNCTION_LEVEL_ALLOWED`: any other late import, with its reason (a heavy optional dependency
  deferred, or a plugin or registry import that must be late).

Imports of other packages (spaCy, transformers, Ray, matplotlib, tensorboard) are not checked
here: they are deferred where they are optional or heavy, inside the functions that use them.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ibkd"

TORCH = "torch"

# Lowest first. A module imports modules of its own layer or below. An exact name wins over a
# package's `.*`; every module must fall in exactly one layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", (
        "ibkd", "ibkd.errors", "ibkd.files", "ibkd.text", "ibkd.signals",
        "ibkd.predictions", "ibkd.metrics", "ibkd.representations", "ibkd.distributed",
    )),
    ("data", ("ibkd.data", "ibkd.data.*")),
    ("models and losses", ("ibkd.models", "ibkd.models.*", "ibkd.losses", "ibkd.losses.*",
                           "ibkd.teacher_cache")),
    ("run settings", ("ibkd.config", "ibkd.recipes", "ibkd.tasks")),
    ("runs and inference", (
        "ibkd.data.prepare", "ibkd.runs", "ibkd.resume", "ibkd.evaluate", "ibkd.tasks.*",
    )),
    ("scoring and teachers", ("ibkd.scoring", "ibkd.distill")),
    ("training and suite results", ("ibkd.train", "ibkd.batched", "ibkd.suite_predictions")),
    ("experiments and reports", ("ibkd.experiments", "ibkd.experiments.*", "ibkd.report")),
    ("command line", ("ibkd.cli", "ibkd.__main__")),
]  # fmt: skip

# module kept free of torch at import -> why
TORCH_FREE: dict[str, str] = {
    "ibkd.cli": "importing ibkd.cli does not load torch (seconds): the command functions import "
    "the library modules that load it (and building the parser, the loss registry)",
    "ibkd.config": "imported by ibkd.cli at module level, so it stays free of torch too; the "
    "loss registry is consulted only when distillation settings are checked",
    "ibkd.recipes": "imported by ibkd.cli at module level (the budgets' names, a run's config "
    "from its options), so it stays free of torch too",
    "ibkd.data.mnist": "imported by ibkd.cli at module level (the MNIST file names), so it stays "
    "free of torch too; only `image_sets` makes tensors (`ibkd.data.batching`)",
}
# (importing module, imported module) -> why the import must stay inside a function.
FUNCTION_LEVEL_ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    """`src/ibkd/data/build.py` -> `ibkd.data.build`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of one source file (parsed once per test session)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@cache
def ibkd_modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _absolute(name: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a `from ... import` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(target: str, modules: dict[str, Path]) -> str | None:
    """The longest ibkd module that is `target` or a package above it."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported ibkd module, line, inside a function?) for every import statement in `path`."""
    tree = parsed(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(name, child, is_package)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                owner = _owner(target, modules) if target.startswith(PACKAGE) else None
                if owner and owner != name:
                    found.append((owner, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


@cache
def loads_torch() -> dict[str, bool]:
    """For every ibkd module, whether importing it imports torch: a module-level import of
    torch, of an ibkd module that loads torch, or of a package above it that does."""
    modules = ibkd_modules()
    direct: dict[str, bool] = {}
    deps: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = parsed(path)
        roots = [
            alias.name if isinstance(node, ast.Import) else (node.module or "")
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        ]
        direct[name] = any(root.split(".")[0] == TORCH for root in roots)
        parents = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        deps[name] = {t for t, _, late in imports_of(name, path, modules) if not late} | parents
    result: dict[str, bool] = {}

    def visit(name: str, seen: frozenset[str]) -> bool:
        if name not in result:
            result[name] = direct[name] or any(
                visit(dep, seen | {name}) for dep in deps[name] if dep not in seen
            )
        return result[name]

    for name in modules:
        visit(name, frozenset())
    return result


@cache
def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """The ibkd import graph, and the function-level imports as (module, imported, line)."""
    modules = ibkd_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    late: list[tuple[str, str, int]] = []
    for name, path in modules.items():
        for target, line, in_function in imports_of(name, path, modules):
            graph[name].add(target)
            if in_function and (name, target, line) not in late:
                late.append((name, target, line))
    return graph, late


def layer_of(module: str) -> int | None:
    """The index in `LAYERS` of the layer `module` belongs to (None: in none)."""
    for level, (_, patterns) in enumerate(LAYERS):
        if module in patterns:
            return level
    for level, (_, patterns) in enumerate(LAYERS):
        if any(p.endswith(".*") and module.startswith(p[:-1]) for p in patterns):
            return level
    return None


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_graph_sees_relative_and_submodule_imports():
    graph, _ = import_graph()
    assert "ibkd.cli" in graph and "ibkd.data.build" in graph and "ibkd.experiments" in graph
    # `from ibkd.data import linzen` (or `from .linzen import ...`) reach the submodule itself
    assert any(target == "ibkd.data.linzen" for target in graph["ibkd.data.build"])


def test_strongly_connected_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycles_between_ibkd_modules():
    graph, _ = import_graph()
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles (each a strongly connected component): " + "; ".join(
        "{" + ", ".join(component) + "}" for component in cycles
    )


def test_every_module_has_one_layer():
    modules = ibkd_modules()
    assert not [m for m in modules if layer_of(m) is None], "modules in no layer of LAYERS"
    names = [p for _, patterns in LAYERS for p in patterns]
    assert len(names) == len(set(names)), "a module or package is named in two layers"


def test_imports_go_to_the_same_layer_or_below():
    graph, _ = import_graph()
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_layer_of_reads_exact_names_before_packages():
    assert LAYERS[layer_of("ibkd.data.prepare")][0] == "runs and inference"
    assert LAYERS[layer_of("ibkd.data.vocab")][0] == "data"
    assert LAYERS[layer_of("ibkd.experiments.grid")][0] == "experiments and reports"
    assert LAYERS[layer_of("ibkd.tasks")][0] == "run settings"
    assert LAYERS[layer_of("ibkd.tasks.images")][0] == "runs and inference"
    assert layer_of("elsewhere.module") is None


def test_ibkd_modules_are_imported_at_module_level():
    _, late = import_graph()
    torch = loads_torch()
    unexplained = [
        f"{module}:{line} imports {target}"
        for module, target, line in late
        if (module, target) not in FUNCTION_LEVEL_ALLOWED
        and not (module in TORCH_FREE and torch[target])
    ]
    assert not unexplained, "function-level imports of ibkd modules:\n" + "\n".join(unexplained)


def test_torch_free_modules_do_not_load_torch():
    torch = loads_torch()
    assert {"ibkd.train", "ibkd.losses", "ibkd.runs"} <= {m for m, t in torch.items() if t}
    loading = [module for module in TORCH_FREE if torch[module]]
    assert not loading, f"these modules should not import torch when imported: {loading}"


def test_every_allowed_late_import_exists_and_says_why():
    _, late = import_graph()
    present = {(module, target) for module, target, _ in late}
    for pair, reason in FUNCTION_LEVEL_ALLOWED.items():
        assert pair in present, f"{pair} is allowed late but no longer imported in a function"
        assert len(reason.split()) >= 4, f"{pair}: the reason is not stated"

"""The repository's own import graph (issue #24): files and lines per area, import cycles, floors, the longest chain.

    python -m research.import_graph --output reports/layout/after.json
    mkdir /tmp/before && git archive 4a59c5d | tar -x -C /tmp/before    # the layout before issue #24
    python -m research.import_graph --root /tmp/before --output reports/layout/before.json

Nodes are this repository's modules (deepfake_detector.*, training.*, research.*, app) and the scripts under reports/
(named by their path); an edge A -> B means A imports B somewhere, at module level or inside a function (both run).
`from pkg import name` is an edge to pkg.name when that is a module of ours, else to pkg. A cycle is a strongly
connected component of more than one module (or a module importing itself). Floors: collapse each cycle into one node;
a module that imports none of ours stands on floor 1, any other one floor above the highest module it imports; the
number of floors is the highest floor, and the longest chain is a path that climbs them all.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("deepfake_detector", "training", "research")
TOP_LEVEL = ("app",)


def area_files(root: Path = REPO_ROOT) -> dict[str, list[Path]]:
    """The .py files of each area, sorted."""
    areas = {
        "deepfake_detector": sorted((root / "deepfake_detector").rglob("*.py")),
        "training": sorted((root / "training").rglob("*.py")),
        "research": sorted((root / "research").rglob("*.py")),
        "reports scripts": sorted((root / "reports").rglob("*.py")),
        "app.py": [root / "app.py"] if (root / "app.py").is_file() else [],
        "tests": sorted((root / "tests").rglob("*.py")),
    }
    return {name: [path for path in paths if "__pycache__" not in path.parts] for name, paths in areas.items()}


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    """training/evaluate.py -> training.evaluate; a package's __init__.py -> the package; reports/x/y.py -> reports/x/y.py."""
    relative = path.relative_to(root)
    if relative.parts[0] == "reports":
        return relative.as_posix()
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Our modules and report scripts: name -> file (tests are not nodes: nothing imports them)."""
    areas = area_files(root)
    files = [*areas["deepfake_detector"], *areas["training"], *areas["research"], *areas["reports scripts"], *areas["app.py"]]
    return {module_name(path, root): path for path in files}


def _is_ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES + TOP_LEVEL


def imported_names(path: Path, name: str) -> set[str]:
    """Every module name path imports (resolved against our modules later), anywhere in the file."""
    package = name.rsplit(".", 1)[0] if "." in name and not path.name == "__init__.py" else name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def import_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """Module -> the set of our modules it imports."""
    nodes = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in nodes.items():
        targets = set()
        for imported in imported_names(path, name):
            if not _is_ours(imported):
                continue
            # `from training import face_cache` adds both training and training.face_cache: keep the deepest that exists
            if imported in nodes:
                targets.add(imported)
        # drop a package when one of its submodules is also imported by the same name (from pkg import sub)
        targets = {t for t in targets if not any(other.startswith(t + ".") for other in targets) or t == name}
        targets.discard(name)
        graph[name] = targets
    # `import a.b` also runs a/__init__.py; ours are empty, so they are nodes without edges and it changes nothing
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted((c for c in components if len(c) > 1 or c[0] in graph.get(c[0], ())), key=lambda c: (-len(c), c))


def floors(graph: dict[str, set[str]]) -> tuple[int, list[str]]:
    """The number of floors of the graph with its cycles collapsed, and one longest chain (top first; a collapsed
    cycle shows as '{a | b | c}')."""
    component_of: dict[str, str] = {}
    for component in cycles(graph):
        label = "{" + " | ".join(component) + "}"
        for member in component:
            component_of[member] = label
    label = lambda node: component_of.get(node, node)  # noqa: E731
    dag: dict[str, set[str]] = {}
    for node, targets in graph.items():
        dag.setdefault(label(node), set()).update(label(t) for t in targets if label(t) != label(node))
    height: dict[str, int] = {}
    below: dict[str, str | None] = {}

    def climb(node: str) -> int:
        if node not in height:
            best, step = 0, None
            for target in sorted(dag.get(node, ())):
                if climb(target) > best:
                    best, step = height[target], target
            height[node], below[node] = best + 1, step
        return height[node]

    top = max(sorted(dag), key=climb) if dag else None
    chain = []
    while top is not None:
        chain.append(top)
        top = below[top]
    return (len(chain), chain)


def measure(root: Path = REPO_ROOT) -> dict:
    graph = import_graph(root)
    found = cycles(graph)
    count, chain = floors(graph)
    # the product and its pipeline alone: deepfake_detector, training and app, whatever research does on top
    product = {node: {t for t in targets if t.split(".")[0] in ("deepfake_detector", "training", "app")}
               for node, targets in graph.items() if node.split(".")[0] in ("deepfake_detector", "training", "app")}
    product_count, product_chain = floors(product)
    areas = {
        name: {"files": len(paths), "lines": sum(len(path.read_text().splitlines()) for path in paths)}
        for name, paths in area_files(root).items()
    }
    return {
        "areas": areas,
        "modules": {name: sorted(path.relative_to(root).as_posix() for path in paths) for name, paths in area_files(root).items() if name in ("training", "research", "reports scripts")},
        "edges": sum(len(targets) for targets in graph.values()),
        "cycles": found,
        "modules_in_cycles": sum(len(c) for c in found),
        "floors": count,
        "longest_chain": chain,
        "product_and_pipeline_floors": product_count,
        "product_and_pipeline_longest_chain": product_chain,
        "product_and_pipeline_cycles": cycles(product),
        "imports_of_research_from_product_or_pipeline": sorted(
            f"{node} -> {target}" for node, targets in product.items() for target in graph[node] if target.split(".")[0] == "research"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="write the measurement as JSON here (default: print it)")
    parser.add_argument("--root", default=str(REPO_ROOT), help="the checkout to measure (e.g. `git archive COMMIT` unpacked)")
    args = parser.parse_args(argv)
    result = measure(Path(args.root).resolve())
    text = json.dumps(result, indent=2) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    print(json.dumps({key: value for key, value in result.items() if key not in ("modules",)}, indent=2))


if __name__ == "__main__":
    main()

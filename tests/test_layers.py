"""The package's structure, checked by the suite that CI runs (docs/design.md, "Layers").

- import-linter's layers contract (pyproject.toml): each layer imports only from the layers below it;
- no import cycle between modules, function-level imports included;
- no module outside ``difair.methods`` names a concrete method class;
- a function-level import of the package's own modules says why (start-up time or an optional dependency).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import difair
from difair.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(difair.__file__).resolve().parent
REASONS = ("start-up time", "optional")


def _sources(exclude: str | None = None) -> list[Path]:
    return [
        p for p in sorted(SRC.rglob("*.py")) if exclude is None or exclude not in p.relative_to(SRC).parts
    ]


def test_layers_contract_is_kept():
    assert lint_imports(str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_import_cycles():
    graph = grimp.build_graph("difair")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == [], f"import cycles (module, imports): {cycles}"


def test_no_concrete_method_outside_methods():
    names = sorted(cls.__name__ for cls in METHODS.values())
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b")
    found = [
        f"{p.relative_to(SRC)}:{i}"
        for p in _sources(exclude="methods")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == [], f"concrete method classes named outside difair/methods: {found}"


def _function_imports(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("difair")
                    or isinstance(node, ast.Import)
                    and any(a.name.startswith("difair") for a in node.names)
                ):
                    yield node


def _explained(lines: list[str], lineno: int) -> bool:
    """The import's line, or the comment opening its block of imports, names a reason."""
    i = lineno - 1
    while i >= 0:
        text = lines[i]
        if any(r in text for r in REASONS) and "#" in text:
            return True
        stripped = text.strip()
        if not (stripped.startswith(("from ", "import ", "#", ")")) or stripped == "" or "," in stripped):
            return False
        i -= 1
    return False


def test_function_level_imports_say_why():
    unexplained = []
    for p in _sources():
        lines = p.read_text().splitlines()
        for node in _function_imports(ast.parse("\n".join(lines))):
            if not _explained(lines, node.lineno):
                unexplained.append(f"{p.relative_to(SRC)}:{node.lineno}")
    assert unexplained == [], (
        f"function-level imports without a reason ({' / '.join(REASONS)}): {unexplained}"
    )

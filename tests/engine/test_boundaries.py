"""The engine is a library the service wraps, never the other way round: nothing under
engine/ imports the app or the web / database stack, and the app uses only what the
engine exports in engine/__init__.py (its public API), so the engine's modules can be
renamed or split without touching the app."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parents[2]
# The service shell's packages: the engine runs in a notebook or a Ray worker without them.
FORBIDDEN = {
    "alembic",
    "app",
    "fastapi",
    "httpx",
    "jinja2",
    "prometheus_client",
    "psycopg",
    "psycopg2",
    "pydantic_settings",
    "requests",
    "sqlalchemy",
    "starlette",
    "typer",
    "uvicorn",
}


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module a file imports: top-level, inside functions and classes, and by
    importlib.import_module / __import__ with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def test_the_engine_imports_nothing_of_the_service():
    found = []
    for path in _sources("engine"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in _imported_modules(tree):
            if module.split(".")[0] in FORBIDDEN:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not found, "engine/ must not depend on the service:\n" + "\n".join(found)


def test_the_check_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from app.settings import Settings\n    import fastapi\n")
    assert [m for _, m in _imported_modules(tree)] == ["app.settings", "fastapi"]


def _engine_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """What a module takes from the engine package: ``from engine import X``, any
    ``engine.sub`` module import (as "sub"), and ``engine.X`` attributes where
    ``engine`` is the package (a module that does ``import engine``)."""
    imports_package = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "engine":
                for alias in node.names:
                    yield node.lineno, alias.name
            elif node.module.startswith("engine."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "engine" and alias.asname in (None, "engine"):
                    imports_package = True
                elif alias.name.startswith("engine."):
                    yield node.lineno, alias.name
    if not imports_package:
        return
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "engine"
        ):
            yield node.lineno, node.attr


def test_the_app_uses_only_what_the_engine_exports():
    exported = set(engine.__all__)
    assert all(hasattr(engine, name) for name in exported)
    found = []
    for path in _sources("app"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _engine_uses(tree):
            if name not in exported:
                found.append(f"{path.relative_to(ROOT)}:{line} uses engine {name}")
    assert not found, (
        "app/ may use only the names in engine.__all__ (export what it needs in "
        "engine/__init__.py):\n" + "\n".join(found)
    )


def test_the_export_check_sees_submodules_and_attributes():
    tree = ast.parse(
        "import engine\nfrom engine.training import ProgressFn\nx = engine.tasks.MAX_CLASSES\n"
    )
    assert sorted(name for _, name in _engine_uses(tree)) == ["engine.training", "tasks"]

"""Imports run one way: cli -> api -> runtime -> tasks -> render -> engines -> media -> schema, with storage, config
and errors below them all (DESIGN.md). An import that runs up the order fails here, naming the module and the line;
imports inside functions count too (a lazy import still ties the layers together)."""

from __future__ import annotations

import ast
from pathlib import Path

import infinitetalk

SOURCE = Path(infinitetalk.__file__).parent

#: A package may import from its own modules and from any package with a lower rank.
RANKS = {
    "errors": 0, "config": 1, "periodic": 1, "storage": 2, "schema": 3, "media": 4,
    "engines": 5, "eval": 5,  # eval measures videos; beside the engines, never using them
    "render": 6, "tasks": 7, "runtime": 8, "api": 9, "cli": 10,
    "client": 3,  # the SDK stands alone: it talks HTTP, not our modules
    "demo": 0,  # data only
}


def _package(module: str) -> str:
    """``infinitetalk.tasks.lifecycle`` -> ``tasks``; the package root itself (its version) -> ``errors``' rank."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every infinitetalk import in ``tree``, relative ones resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "infinitetalk"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "infinitetalk":
                found.append((node.lineno, target))
    return found


def upward(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The imports in ``source`` (the text of ``module``) that run up the order."""
    own = _package(module)
    wrong = []
    for line, target in imported(ast.parse(source), module, is_package):
        theirs = _package(target)
        if theirs != own and RANKS[theirs] >= RANKS[own]:
            wrong.append(f"{module}:{line} imports {target} ({own} may not import {theirs})")
    return wrong


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        parts = ("infinitetalk", *path.relative_to(SOURCE).with_suffix("").parts)
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def test_every_package_has_a_rank() -> None:
    packages = {_package(module) for module, _ in modules()}
    assert packages <= set(RANKS), f"give these a place in the order (RANKS, DESIGN.md): {packages - set(RANKS)}"


def test_imports_run_one_way() -> None:
    wrong = []
    for module, path in modules():
        wrong += upward(path.read_text(), module, is_package=path.name == "__init__.py")
    assert not wrong, "imports that run up the order:\n" + "\n".join(wrong)


def test_the_check_catches_an_upward_import() -> None:
    """The check itself: a task module that reaches into the runtime, a storage module that reaches into tasks
    (even lazily, and relatively) are caught; importing downward or within a package is not."""
    source = ("from infinitetalk.runtime.runner import TaskRunner\n"
              "from infinitetalk.render.render import render\n"
              "from .models import Task\n")
    assert upward(source, "infinitetalk.tasks.lifecycle") == [
        "infinitetalk.tasks.lifecycle:1 imports infinitetalk.runtime.runner (tasks may not import runtime)"]
    lazy = "def f():\n    from ..tasks import errors\n"
    assert upward(lazy, "infinitetalk.storage.base") == [
        "infinitetalk.storage.base:2 imports infinitetalk.tasks (storage may not import tasks)"]

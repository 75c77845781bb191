"""Test modules share helpers through tests/support only: no module under tests/ imports a test
module or a conftest (pytest loads those itself; importing them runs their module code twice and
couples unrelated test files)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# Owned by another slice of issue 8 while this rule lands; it still imports tests.waha.conftest.
# Remove the entry when that file imports tests.support instead (the test below insists).


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    return any(part == "conftest" or part.startswith("test_") for part in parts)


def _imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names; relative ones resolved against its package)."""
    package = path.relative_to(root.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            # `from tests.api import test_events` imports a test module too
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def offending_imports(path: Path, root: Path = TESTS) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line}: imports {module}"
        for line, module in _imported_modules(path, root)
        if module.startswith("tests.") and _forbidden(module)
    ]


def test_no_module_under_tests_imports_a_test_module_or_a_conftest():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        offenders += offending_imports(path)
    assert offenders == [], "move shared helpers to tests/support:\n" + "\n".join(offenders)


def test_the_check_catches_each_kind_of_import(tmp_path):
    package = tmp_path / "tests" / "api"
    package.mkdir(parents=True)
    sample = package / "test_sample.py"
    sample.write_text(
        "import tests.api.test_events\n"
        "from tests.api.test_webhooks import sign\n"
        "from tests.conftest import register\n"
        "from tests.api import test_errors\n"
        "from .conftest import admin\n"
        "from . import test_chips\n"
        "from tests.support.api import register\n"
        "from tests.doubles import serve_double\n"
        "import os\n"
    )
    assert [line.split(": imports ")[1] for line in offending_imports(sample, tmp_path / "tests")] == [
        "tests.api.test_events",
        "tests.api.test_webhooks.sign",
        "tests.conftest.register",
        "tests.api.test_errors",
        "tests.api.conftest.admin",
        "tests.api.test_chips",
    ]

"""libs/common declares its public surface: every module has an ``__all__`` naming what it defines, the
package docstring describes every module, and what the services, tools, tests and benchmarks import
from libs/common is in that surface (a name outside it, or one starting with ``_``, is a module's own
business). The Alembic scripts under ``migrations/`` are loaded by path, not imported, and are left out.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

import cte_common

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "libs" / "common" / "src" / "cte_common"
# Everything outside libs/common that imports from it.
USERS = ("services", "tools", "tests", "bench")


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        names.append(".".join(parts))
    return names


MODULES = [m for m in module_names() if m != "cte_common"]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}: __all__ repeats a name"
    for item in exported:
        assert not item.startswith("_"), f"{name}: {item} starts with _ but is exported"
        assert hasattr(module, item), f"{name}: __all__ names {item}, which it does not define"


def test_the_package_docstring_describes_every_module() -> None:
    doc = cte_common.__doc__ or ""
    top_level = {m.split(".")[1] for m in MODULES}
    missing = sorted(m for m in top_level if f"``{m}``" not in doc)
    assert not missing, f"cte_common/__init__.py does not describe: {', '.join(missing)}"


def imports_from_common() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every ``from cte_common... import name`` outside libs/common."""
    found = []
    for top in USERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cte_common":
                    relative = str(path.relative_to(ROOT))
                    found += [(relative, node.lineno, node.module, alias.name) for alias in node.names]
    return found


def test_users_import_only_the_public_surface() -> None:
    found = imports_from_common()
    assert any(f.startswith("services/") for f, *_ in found)
    problems = []
    for path, line, module_name, name in found:
        module = importlib.import_module(module_name)
        if hasattr(module, "__path__") and importlib.util.find_spec(f"{module_name}.{name}") is not None:
            continue  # a submodule of a package
        if name not in getattr(module, "__all__", ()):
            problems.append(f"{path}:{line}: {module_name}.{name} is not in its __all__")
    assert not problems, "\n".join(problems)

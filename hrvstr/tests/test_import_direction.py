"""Imports run in the stated direction (issue 13), read from the source with ``ast``.

- The domain apps depend downwards only: billing -> subscriptions -> activities.
- Pages, APIs and admins (``views.py``, ``apis.py``, ``auth_apis.py``, ``admin.py``, ``urls.py``)
  are the edge and may import any app.
- The kernel (every ``hrvstr`` module a domain module imports) imports no domain app: otherwise
  the kernel and the app form a cycle.
- ``stripe_emulator`` (the offline Stripe, its tests included) imports nothing of ours.

Every import counts, a lazy one inside a function too: it is a dependency all the same.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"activities": 0, "subscriptions": 1, "billing": 2}  # an app may import lower layers
OURS = set(LAYERS) | {"hrvstr", "stripe_emulator", "bench", "devtools"}
EDGE_FILES = {"views.py", "apis.py", "auth_apis.py", "admin.py", "urls.py"}
SKIPPED_DIRS = {"tests", "migrations", "djstripe_migrations"}

# Known violations, as (file, imported module). This list may only shrink: a new entry means a
# new import against the direction. Each one here is a cycle between the kernel and an app.
KNOWN_EXCEPTIONS = {
    # Bearer-token auth reads a user's token generation from subscriptions.tokens, which reads
    # the user back through hrvstr.auth; subscriptions.users takes normalize_email from it.
    ("hrvstr/auth.py", "subscriptions.tokens"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in ``path``; ``from a import b`` gives ``a``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def python_files(package: str, *, with_tests: bool = False) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if with_tests or not SKIPPED_DIRS & set(path.relative_to(ROOT).parts)
    ]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def top(module: str) -> str:
    return module.split(".")[0]


def module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def domain_violations() -> list[str]:
    found = []
    for app, layer in LAYERS.items():
        for path in python_files(app):
            if path.name in EDGE_FILES:
                continue
            for line, module in imports_of(path):
                other = top(module)
                if other in LAYERS and LAYERS[other] > layer:
                    found.append(f"{rel(path)}:{line} imports {module} ({app} -> {other})")
                elif other in {"stripe_emulator", "bench", "devtools"}:
                    found.append(f"{rel(path)}:{line} imports {module} (not a runtime package)")
    return found


def kernel_modules() -> set[str]:
    """The hrvstr modules the domain modules import (the kernel, as the code uses it)."""
    kernel = set()
    for app in LAYERS:
        for path in python_files(app):
            if path.name in EDGE_FILES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    kernel |= {a.name for a in node.names if top(a.name) == "hrvstr"}
                elif (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and top(node.module) == "hrvstr"
                ):
                    # ``from hrvstr import auth`` imports the module hrvstr.auth.
                    kernel |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return kernel


def kernel_violations() -> list[str]:
    found = []
    for module in sorted(kernel_modules()):
        path = module_path(module)
        if path is None:
            continue
        for line, imported in imports_of(path):
            if top(imported) in LAYERS and (rel(path), imported) not in KNOWN_EXCEPTIONS:
                found.append(f"{rel(path)}:{line} imports {imported} (kernel -> {top(imported)})")
    return found


def emulator_violations() -> list[str]:
    return [
        f"{rel(path)}:{line} imports {module} (the emulator imports nothing of ours)"
        for path in python_files("stripe_emulator", with_tests=True)
        for line, module in imports_of(path)
        if top(module) in OURS - {"stripe_emulator"}
    ]


def test_domain_apps_import_only_downwards():
    assert domain_violations() == []


def test_the_kernel_imports_no_domain_app():
    assert kernel_violations() == []


def test_the_emulator_imports_nothing_of_ours():
    assert emulator_violations() == []


def test_known_exceptions_are_still_real():
    """An exception that no longer occurs must leave the list (it can only shrink)."""
    for file, module in KNOWN_EXCEPTIONS:
        assert module in {imported for _, imported in imports_of(ROOT / file)}, (file, module)


def test_the_check_names_the_offending_file_and_import(tmp_path, monkeypatch):
    """The check can fail: an upward import in a service is reported with its file and line."""
    for app in LAYERS:
        (tmp_path / app).mkdir()
    (tmp_path / "activities" / "services.py").write_text("import os\n\nfrom billing import sync\n")
    (tmp_path / "billing" / "views.py").write_text("from activities import services\n")
    (tmp_path / "stripe_emulator").mkdir()
    (tmp_path / "stripe_emulator" / "core.py").write_text("from hrvstr.errors import X\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert domain_violations() == [
        "activities/services.py:3 imports billing (activities -> billing)"
    ]
    assert emulator_violations() == [
        "stripe_emulator/core.py:1 imports hrvstr.errors (the emulator imports nothing of ours)"
    ]


def account_writes_outside_services() -> list[str]:
    """Writes of ``CreditAccount`` rows (``CreditAccount.objects....update/create/delete``)
    anywhere but subscriptions/services/: the model says only the services write it."""
    found = []
    writes = {"update", "create", "get_or_create", "update_or_create", "bulk_update", "delete"}
    for package in ("hrvstr", *LAYERS, "devtools"):
        for path in python_files(package):
            if rel(path).startswith("subscriptions/services/"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr in writes and "CreditAccount.objects" in ast.unparse(node.func):
                    found.append(f"{rel(path)}:{node.lineno} writes CreditAccount")
    return found


def test_only_the_services_write_credit_accounts(tmp_path, monkeypatch):
    assert account_writes_outside_services() == []
    (tmp_path / "billing").mkdir()
    (tmp_path / "billing" / "sync.py").write_text(
        "CreditAccount.objects.filter(pk=1).update(tier='pro')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert account_writes_outside_services() == ["billing/sync.py:1 writes CreditAccount"]


def test_modules_import_no_other_test_module():
    """Shared test helpers live in helper modules (harness, helpers, routes, concurrency),
    not in a test module another one imports: that runs its tests' imports twice and hides
    where a helper is defined."""
    found = [
        f"{rel(path)}:{line} imports {module}"
        for package in ("hrvstr", *LAYERS, "devtools")
        for path in sorted((ROOT / package).rglob("tests/*.py"))
        for line, module in imports_of(path)
        if module.split(".")[-1].startswith("test_")
    ]
    assert found == []

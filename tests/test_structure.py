"""The code's shape: modules by stage that import each other one way only, and raw SQL whose
column lists match the models."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "newsletter", "papers")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, modules):
    """Project modules that `path` imports, at the top or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def test_no_module_imports_one_that_imports_it_back():
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p): p for p in paths}
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            pytest.fail("import cycle: " + " -> ".join(trail[trail.index(name):] + [name]))
        state[name] = "visiting"
        for other in sorted(graph[name]):
            if other != name.rsplit(".", 1)[0]:  # a package's own __init__ is not a cycle
                visit(other, trail + [name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def test_papers_never_imports_newsletter():
    for path in (ROOT / "papers").rglob("*.py"):
        assert not any(m.startswith("newsletter") for m in _imports(path, {"newsletter"} | _all_newsletter())), path


def _all_newsletter():
    return {_module_name(p) for p in (ROOT / "newsletter").rglob("*.py")}


@pytest.mark.django_db
def test_raw_sql_column_lists_match_the_models():
    from newsletter import sql
    from newsletter.models import Delivery, Subscriber, Vote

    def columns(model):
        return {f.column for f in model._meta.concrete_fields}

    required = {f.column for f in Delivery._meta.concrete_fields if not f.primary_key and not f.null}
    assert set(sql.DELIVERY_INSERT) == required  # a new non-null column must be given a value
    assert set(sql.CLAIMED) <= columns(Delivery)
    assert set(sql.RECIPIENT) <= columns(Subscriber)
    assert set(sql.VOTE) <= columns(Vote)

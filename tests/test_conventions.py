"""Conventions that hold the codebase's shape: fail the suite when one is broken."""

import ast
import io
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
# ocenter foundation ← tenants ← pools ← billing ← ocenter top
LAYERS = ["tenants", "pools", "billing"]
OCENTER_TOP = {"settings", "urls", "asgi", "celery", "routing", "consumers", "views", "jobs", "management", "api_views", "api_urls"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _python_files(package: str):
    return [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _our_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in ("ocenter", *LAYERS) for p in _python_files(package)}


def _import_edges(path: Path, modules) -> set[str]:
    """The modules of ours that ``path`` imports, at the top or inside functions.

    A task module's imports inside its task bodies are left out: services
    enqueue tasks, and tasks call services (Celery is just another interface).
    """
    tree = ast.parse(path.read_text())
    skip = set()
    if path.name == "tasks.py":
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                skip.update(id(n) for n in ast.walk(node))
    edges = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # "pools.selectors.tenant_usage" is the module pools.selectors
                name = name.rpartition(".")[0]
            if name:
                edges.add(name)
    return edges


@pytest.mark.parametrize("app", LAYERS)
def test_apps_import_only_the_layers_beneath_them(app):
    forbidden = set(LAYERS[LAYERS.index(app) + 1 :])
    offenders = {str(p.relative_to(ROOT)): _imports(p) & forbidden for p in _python_files(app)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_ocenter_foundation_imports_no_app():
    offenders = {}
    for path in _python_files("ocenter"):
        relative = path.relative_to(ROOT / "ocenter")
        if relative.parts[0].removesuffix(".py") in OCENTER_TOP:
            continue
        if bad := _imports(path) & set(LAYERS):
            offenders[str(relative)] = bad
    assert offenders == {}


def test_the_agent_runs_without_django():
    offenders = {
        str(p.relative_to(ROOT)): _imports(p) & {"django", "rest_framework", "channels", "celery", "ocenter", "tenants", "billing"}
        for p in _python_files("pools/agent")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    # and nothing outside pools.agent from the pools package either
    for path in _python_files("pools/agent"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pools."):
                assert node.module.startswith("pools.agent"), f"{path} imports {node.module}"


def test_no_module_takes_part_in_an_import_cycle():
    modules = _our_modules()
    graph = {name: _import_edges(path, modules) - {name} for name, path in modules.items()}
    cycles, done = [], set()

    def visit(name, trail):
        if name in trail:
            cycles.append(" → ".join([*trail[trail.index(name) :], name]))
            return
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in _our_modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in {"ocenter", *LAYERS}:
                offenders += [f"{_module_name(path)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_every_model_has_a_docstring():
    ours = [model for model in apps.get_models() if model._meta.app_label in {"ocenter", *LAYERS}]
    # Django writes "Model(field, …)" as the docstring of a model that has none.
    undocumented = [m._meta.label for m in ours if not m.__doc__ or m.__doc__.startswith(f"{m.__name__}(")]
    assert ours and undocumented == []


# Inside a services package, these modules hold the building blocks the services share
# (an allocation's history, the room on GPUs, reclaiming): helpers that take the allocation first.
BUILDING_BLOCKS = {"history.py", "room.py", "reclaim.py"}


def test_every_service_has_a_docstring_and_keyword_only_arguments():
    problems = []
    for path in [*ROOT.glob("*/services.py"), *ROOT.glob("*/services/**/*.py")]:
        if path.name in BUILDING_BLOCKS:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    problems.append(f"{path.name}:{node.name} has no docstring")
                if node.args.args:
                    problems.append(f"{path.name}:{node.name} takes positional arguments")
    assert problems == []


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_every_api_serializer_refuses_unknown_fields():
    """Input that names a field the API does not have is a 400, never silently dropped (ocenter.api.StrictInput)."""
    import inspect

    from rest_framework import serializers

    from ocenter.api import StrictInput

    loose = []
    for module in ("ocenter.api_views", "tenants.api.serializers", "pools.api.serializers", "billing.api.serializers"):
        for name, cls in inspect.getmembers(__import__(module, fromlist=["_"]), inspect.isclass):
            if issubclass(cls, serializers.Serializer) and cls.__module__ == module and not issubclass(cls, StrictInput):
                loose.append(f"{module}.{name}")
    assert loose == []

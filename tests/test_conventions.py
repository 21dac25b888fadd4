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


@pytest.mark.parametrize("app", LAYERS)
def test_apps_import_only_the_layers_beneath_them(app):
    forbidden = set(LAYERS[LAYERS.index(app) + 1:])
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
    offenders = {str(p.relative_to(ROOT)): _imports(p) & {"django", "rest_framework", "channels", "celery", "ocenter", "tenants", "billing"}
                 for p in _python_files("pools/agent")}
    assert {k: v for k, v in offenders.items() if v} == {}
    # and nothing outside pools.agent from the pools package either
    for path in _python_files("pools/agent"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pools."):
                assert node.module.startswith("pools.agent"), f"{path} imports {node.module}"


def test_every_model_has_a_docstring():
    ours = [model for model in apps.get_models() if model._meta.app_label in {"ocenter", *LAYERS}]
    # Django writes "Model(field, …)" as the docstring of a model that has none.
    undocumented = [m._meta.label for m in ours if not m.__doc__ or m.__doc__.startswith(f"{m.__name__}(")]
    assert ours and undocumented == []


def test_every_service_has_a_docstring_and_keyword_only_arguments():
    problems = []
    for path in [*ROOT.glob("*/services.py"), *ROOT.glob("*/services/*.py")]:
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

"""
The built wheel is oCenter, whole: installed into a fresh environment outside
the checkout, it migrates a new database and serves its pages and static
files through uvicorn; the pool agent in it runs where Django is not
installed at all.

Its dependencies are this environment's (a path file, not an install: the
test needs no network), and nothing of the checkout is on its path.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.agents import AgentProcess, a100_nodes
from tests.servers import answering, free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="venv layout")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import shutil

    out = tmp_path_factory.mktemp("dist")
    # Built from a copy of the tree: setuptools keeps a build/ directory, and a stale one would ship files since removed.
    source = tmp_path_factory.mktemp("source") / "ocenter"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "staticfiles",
                                                                "docs", "node_modules", ".pytest_cache"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
                   check=True, cwd=out)  # fmt: skip
    (built,) = out.glob("ocenter-*.whl")
    return built


def _venv(where: Path, wheel: Path, *, with_dependencies: bool) -> Path:
    """A new environment with the wheel in it (and, ``with_dependencies``, this one's libraries on its path)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", purelib], text=True).strip())
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True)
    entry_points = {"ocenter": "ocenter.cli", "ocenter-agent": "pools.agent.__main__"}  # as pyproject.toml's [project.scripts]
    for command, module in entry_points.items():  # pip --target writes no console scripts: these are what pip would write
        script = where / "bin" / command
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    if with_dependencies:
        (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where


def test_the_wheel_ships_the_site_and_runs_outside_the_checkout(wheel, tmp_path):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "ocenter/site/templates/base.html" in names and "ocenter/site/static/css/ocenter.css" in names
    assert "ocenter/site/locale/zh_Hans/LC_MESSAGES/django.mo" in names and "pools/agent/examples/bj-a100.toml" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    venv = _venv(tmp_path / "venv", wheel, with_dependencies=True)
    python, run = str(venv / "bin" / "python"), tmp_path / "run"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DATABASE_URL", "REDIS_URL")}
    env.update({"SECRET_KEY": "packaging-test-" + "x" * 40, "DATABASE_URL": f"sqlite:///{run / 'ocenter.sqlite3'}",
                "ALLOWED_HOSTS": "127.0.0.1", "OCENTER_EMBEDDED_JOBS": "0"})  # fmt: skip
    where = subprocess.check_output([python, "-c", "import ocenter; print(ocenter.__file__)"], cwd=run, env=env, text=True)
    assert where.startswith(str(venv)), where  # the installed package, not the checkout
    subprocess.run([str(venv / "bin" / "ocenter"), "migrate", "--noinput", "-v", "0"], check=True, cwd=run, env=env)
    port = free_port()
    server = subprocess.Popen([python, "-m", "uvicorn", "ocenter.asgi:application", "--port", str(port), "--no-access-log"],
                              cwd=run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        login = answering(f"{url}/login/")
        if login is None:
            pytest.fail(server.stdout.read() if server.poll() is not None else "uvicorn did not answer")
        assert login.status_code == 200 and "oCenter" in login.text and 'name="password"' in login.text
        chinese = httpx.get(f"{url}/login/", headers={"Accept-Language": "zh-hans"}, timeout=2)
        assert 'lang="zh-hans"' in chinese.text and "登录" in chinese.text  # the catalogue came along
        css = httpx.get(f"{url}/static/css/ocenter.css", timeout=2)
        assert css.status_code == 200 and "--accent" in css.text
    finally:
        server.terminate()
        server.wait(10)


def test_the_installed_agent_runs_without_django(wheel, tmp_path):
    venv = _venv(tmp_path / "agent-venv", wheel, with_dependencies=False)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import django"], capture_output=True).returncode != 0  # no Django here
    agent = AgentProcess(tmp_path, "bj", [a100_nodes(1, gpus=2)], command=[str(venv / "bin" / "ocenter-agent")]).start()
    try:
        answer = httpx.get(f"{agent.url}/v1/inventory", headers={"Authorization": f"Bearer {agent.token}"}, timeout=5)
        assert answer.status_code == 200 and len(answer.json()["nodes"][0]["accelerators"]) == 2
    finally:
        agent.stop()

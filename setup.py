"""The one thing pyproject.toml cannot say: the site's own files (``templates/``, ``static/``, ``locale/``, at the top of
the checkout) travel inside the wheel, as ``ocenter/site/…``, where ``ocenter.settings`` finds them once installed."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SITE = ("templates", "static", "locale")


class BuildWithSite(build_py):
    def run(self):
        super().run()
        for name in SITE:
            target = Path(self.build_lib) / "ocenter" / "site" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("*.po~", "__pycache__"))


setup(cmdclass={"build_py": BuildWithSite})

"""oCenter's settings, with the floor views of ``bench/floors.py`` routed (bench only)."""

from ocenter.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floors"
